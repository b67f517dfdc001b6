using ControlPlane.Errors;
using Microsoft.AspNetCore.Mvc;

namespace ControlPlane.Api;

/// <summary>Builds the problem+json bodies every error answers with.</summary>
public static class ProblemResponses
{
    /// <summary>A stable, non-dereferenceable identifier clients can branch on.</summary>
    public static string TypeUri(string slug) => $"urn:controlplane:problem:{slug}";

    public static int StatusFor(ProblemKind kind) => kind switch
    {
        ProblemKind.Validation => StatusCodes.Status400BadRequest,
        ProblemKind.NotFound => StatusCodes.Status404NotFound,
        ProblemKind.Conflict => StatusCodes.Status409Conflict,
        ProblemKind.Forbidden => StatusCodes.Status403Forbidden,
        ProblemKind.Unprocessable => StatusCodes.Status422UnprocessableEntity,
        ProblemKind.TooManyRequests => StatusCodes.Status429TooManyRequests,
        _ => StatusCodes.Status400BadRequest,
    };

    /// <summary>
    /// Gives the errors ASP.NET Core answers by itself (no route, wrong method, wrong content type) the
    /// same stable types and plain-language details as the control plane's own.
    /// </summary>
    public static void DescribeFrameworkProblem(ProblemDetailsContext context)
    {
        var problem = context.ProblemDetails;
        if (problem.Type?.StartsWith("urn:controlplane:", StringComparison.Ordinal) == true)
        {
            return;
        }

        var request = context.HttpContext.Request;
        (string slug, string title, string detail) = problem.Status switch
        {
            404 => ("not-found", "Not found", $"Nothing is served at '{request.Path}'. See /openapi/v1.json for the API."),
            405 => ("method-not-allowed", "Method not allowed", $"{request.Method} is not supported at '{request.Path}'."),
            415 => ("unsupported-media-type", "Unsupported content type", "Send the request body as JSON with 'Content-Type: application/json'."),
            _ => ($"http-{problem.Status}", problem.Title ?? "Error", problem.Detail ?? "The request could not be completed."),
        };
        problem.Type = TypeUri(slug);
        problem.Title = title;
        problem.Detail = detail;
    }

    public static ProblemDetailsContext Context(
        HttpContext httpContext,
        int status,
        string slug,
        string title,
        string detail,
        IDictionary<string, string[]>? errors = null,
        IReadOnlyDictionary<string, string>? extensions = null)
    {
        var problem = errors is null
            ? new ProblemDetails()
            : new HttpValidationProblemDetails(errors);
        problem.Status = status;
        problem.Type = TypeUri(slug);
        problem.Title = title;
        problem.Detail = detail;
        foreach (var (key, value) in extensions ?? new Dictionary<string, string>())
        {
            problem.Extensions[key] = value;
        }

        return new ProblemDetailsContext { HttpContext = httpContext, ProblemDetails = problem };
    }
}

/// <summary>A request failed validation; <see cref="Errors"/> names each offending field.</summary>
public sealed class RequestValidationException(IDictionary<string, string[]> errors)
    : Exception("The request is not valid: " + string.Join(" ", errors.SelectMany(e => e.Value)))
{
    public IDictionary<string, string[]> Errors { get; } = errors;

    public static void ThrowIfAny(IDictionary<string, string[]> errors)
    {
        if (errors.Count > 0)
        {
            throw new RequestValidationException(errors);
        }
    }
}
