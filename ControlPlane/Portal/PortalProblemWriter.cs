using System.Net;
using System.Text;
using ControlPlane.Api;
using ControlPlane.Errors;
using Microsoft.AspNetCore.Mvc;

namespace ControlPlane.Portal;

/// <summary>
/// The portal's answer to a refusal: the same title and detail the API's problem+json carries (one mapping, in
/// <see cref="Api.ProblemExceptionHandler"/>), as a page a person reads, with the same status code — a tenant that is not
/// theirs is a 404 page, an action their role does not allow a 403 page.
/// </summary>
public sealed class PortalProblemWriter : IProblemDetailsWriter
{
    public bool CanWrite(ProblemDetailsContext context) =>
        context.HttpContext.Request.Path.StartsWithSegments("/portal") && !LiveStatus.IsLiveRequest(context.HttpContext.Request);

    public async ValueTask WriteAsync(ProblemDetailsContext context)
    {
        var problem = context.ProblemDetails;
        var response = context.HttpContext.Response;
        response.ContentType = "text/html; charset=utf-8";
        response.Headers.CacheControl = "no-store";
        var title = problem.Status switch
        {
            400 when problem.Title is null or "Bad Request" => "The form could not be read",
            _ => problem.Title ?? "Something went wrong",
        };
        var detail = problem.Status == 400 && problem.Detail is null
            ? "The form was sent without its security token or it expired. Go back, reload the page and send it again."
            : problem.Detail;
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
            .Append("<title>").Append(Encode(title)).Append(" · Control plane</title><link rel=\"stylesheet\" href=\"/portal/assets/portal.css\"></head><body>")
            .Append("<header class=\"topbar\"><a class=\"brand\" href=\"/portal\">Control plane</a></header>")
            .Append("<main id=\"main\" class=\"page narrow\"><h1>").Append(Encode(title)).Append("</h1>");
        if (detail is not null)
        {
            html.Append("<p class=\"problem-detail\">").Append(Encode(detail)).Append("</p>");
        }

        if (problem.Extensions.TryGetValue("errors", out var errors) && errors is IDictionary<string, string[]> fields)
        {
            html.Append("<ul class=\"field-errors\">");
            foreach (var message in fields.Values.SelectMany(messages => messages))
            {
                html.Append("<li>").Append(Encode(message)).Append("</li>");
            }

            html.Append("</ul>");
        }

        html.Append("<p><a class=\"button secondary\" href=\"/portal\">Back to the portal</a></p></main></body></html>");
        await response.WriteAsync(html.ToString(), context.HttpContext.RequestAborted);
    }

    /// <summary>A refusal as one line a person can act on: its detail, or each invalid field's message.</summary>
    public static string Describe(Exception refusal) => refusal switch
    {
        RequestValidationException invalid => string.Join(" ", invalid.Errors.Values.SelectMany(messages => messages)),
        ControlPlaneException domain => domain.Detail,
        _ => throw new ArgumentException("Only refusals are described.", nameof(refusal)),
    };

    private static string Encode(string text) => WebUtility.HtmlEncode(text);
}
