using System.Data.Common;
using System.Text.Json;
using ControlPlane.Errors;
using ControlPlane.Persistence;
using Microsoft.AspNetCore.Diagnostics;

namespace ControlPlane.Api;

/// <summary>
/// The one place exceptions become HTTP answers. Domain refusals and bad input get a precise 4xx; anything
/// unexpected gets a 500 that tells the caller nothing internal, while the log keeps the whole exception.
/// </summary>
public sealed partial class ProblemExceptionHandler(IProblemDetailsService problems, ILogger<ProblemExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        var context = exception switch
        {
            ControlPlaneException domain => FromDomain(httpContext, domain),
            RequestValidationException invalid => ProblemResponses.Context(
                httpContext, StatusCodes.Status400BadRequest, "validation-failed", "The request is not valid", "See 'errors' for each field.", invalid.Errors),
            BadHttpRequestException badRequest => FromBadRequest(httpContext, badRequest),
            StoreUnavailableException or DbException => StoreUnavailable(httpContext, exception),
            TimeoutException or Orleans.Runtime.OrleansException => Unavailable(httpContext, exception),
            _ => Unexpected(httpContext, exception),
        };
        httpContext.Response.StatusCode = context.ProblemDetails.Status!.Value;
        return await problems.TryWriteAsync(context);
    }

    private static ProblemDetailsContext FromDomain(HttpContext httpContext, ControlPlaneException domain)
    {
        if (domain.Extensions.TryGetValue("retryAfterSeconds", out var seconds))
        {
            httpContext.Response.Headers.RetryAfter = seconds;
        }

        return ProblemResponses.Context(
            httpContext, ProblemResponses.StatusFor(domain.Kind), domain.Type, domain.Title, domain.Detail, extensions: domain.Extensions);
    }

    private static ProblemDetailsContext FromBadRequest(HttpContext httpContext, BadHttpRequestException badRequest)
    {
        if (badRequest.StatusCode == StatusCodes.Status415UnsupportedMediaType)
        {
            return ProblemResponses.Context(
                httpContext, 415, "unsupported-media-type", "Unsupported content type", "Send the request body as JSON with 'Content-Type: application/json'.");
        }

        if (badRequest.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return ProblemResponses.Context(httpContext, 413, "payload-too-large", "Request body too large", "The request body exceeds the size this API accepts.");
        }

        if (badRequest.InnerException is JsonException json)
        {
            var field = json.Path is { Length: > 2 } path ? path.TrimStart('$', '.') : null;
            var unknownField = json.Message.Contains("could not be mapped", StringComparison.Ordinal);
            var detail = unknownField
                ? $"Unknown field '{field}'."
                : field is null
                    ? $"The body is not valid JSON (line {json.LineNumber + 1}, position {json.BytePositionInLine + 1})."
                    : $"The value of '{field}' has the wrong type or is malformed.";
            var errors = field is null ? null : new Dictionary<string, string[]> { [field] = [detail] };
            return ProblemResponses.Context(httpContext, 400, "malformed-request", "The request body could not be read", detail, errors);
        }

        var bodyMissing = badRequest.Message.Contains("no body was provided", StringComparison.OrdinalIgnoreCase);
        return ProblemResponses.Context(
            httpContext,
            badRequest.StatusCode,
            "malformed-request",
            "The request could not be read",
            bodyMissing ? "A JSON request body is required." : "The request is malformed.");
    }

    private ProblemDetailsContext Unavailable(HttpContext httpContext, Exception exception)
    {
        LogUnavailable(exception, httpContext.TraceIdentifier);
        httpContext.Response.Headers.RetryAfter = "1";
        return ProblemResponses.Context(
            httpContext, 503, "temporarily-unavailable", "Temporarily unavailable", "The control plane could not complete the request in time. Retry shortly.");
    }

    private ProblemDetailsContext StoreUnavailable(HttpContext httpContext, Exception exception)
    {
        LogStoreUnavailable(exception, httpContext.TraceIdentifier);
        httpContext.Response.Headers.RetryAfter = "2";
        return ProblemResponses.Context(
            httpContext,
            503,
            "store-unavailable",
            "The change could not be stored",
            "The control plane's database did not take the change, so nothing was changed. Retry shortly; with the same Idempotency-Key a retry returns the first request's result.");
    }

    private ProblemDetailsContext Unexpected(HttpContext httpContext, Exception exception)
    {
        LogUnexpected(exception, httpContext.TraceIdentifier);
        return ProblemResponses.Context(
            httpContext,
            500,
            "internal-error",
            "Internal error",
            $"Something went wrong on our side. Quote trace id '{httpContext.TraceIdentifier}' when you contact support.");
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Request {TraceId} failed unexpectedly")]
    private partial void LogUnexpected(Exception exception, string traceId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {TraceId} could not be stored; nothing changed")]
    private partial void LogStoreUnavailable(Exception exception, string traceId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {TraceId} timed out or the silo was unavailable")]
    private partial void LogUnavailable(Exception exception, string traceId);
}
