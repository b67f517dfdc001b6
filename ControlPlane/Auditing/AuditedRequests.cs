using System.Diagnostics;
using System.Text.Json;
using ControlPlane.Errors;
using ControlPlane.Security;

namespace ControlPlane.Auditing;

/// <summary>What an audit record says of the request it came from: who, from where, with what, under which trace id.</summary>
public static class AuditedRequests
{
    private const int MaxUserAgentLength = 512;
    private static readonly object s_recorded = new();

    /// <summary>An entry for this request, attributed to its caller (<c>anonymous</c> before authentication).</summary>
    public static AuditEntry Entry(HttpContext context, string? tenantId, string action, string? target, string outcome, string? details = null)
    {
        var agent = context.Request.Headers.UserAgent.ToString();
        return new AuditEntry(context.User.Identity?.IsAuthenticated == true ? context.User.Actor() : "anonymous", tenantId, action, target, outcome, details)
        {
            ClientAddress = context.Connection.RemoteIpAddress?.ToString(),
            UserAgent = agent.Length == 0 ? null : agent[..Math.Min(agent.Length, MaxUserAgentLength)],
            RequestId = RequestId(context),
        };
    }

    /// <summary>The id a problem+json answer carries as <c>traceId</c>, so a refusal a customer quotes finds its record.</summary>
    public static string RequestId(HttpContext context) => Activity.Current?.Id ?? context.TraceIdentifier;

    /// <summary>A state as a JSON object for <see cref="AuditEntry.Before"/> and <see cref="AuditEntry.After"/>.</summary>
    public static string? State(object? state) => state is null ? null : JsonSerializer.Serialize(state, AuditJson.Options);

    /// <summary>Marks the request as recorded, so <see cref="RefusalAuditMiddleware"/> does not record its 403 a second time.</summary>
    public static void MarkRecorded(HttpContext context) => context.Items[s_recorded] = true;

    public static bool IsRecorded(HttpContext context) => context.Items.ContainsKey(s_recorded);
}

/// <summary>
/// Records every 401 and 403 the API answers, after the answer: a missing or wrong API key, a key without the role.
/// Refusals an endpoint already recorded (a quota's 403) are not recorded twice.
/// </summary>
public sealed partial class RefusalAuditMiddleware(RequestDelegate next, AuditLog audit, ILogger<RefusalAuditMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        catch (ControlPlaneException refused) when (refused.Kind == ProblemKind.Forbidden)
        {
            // A permission check refused before the handler ran; the exception handler outside answers the 403.
            await RecordAsync(context, StatusCodes.Status403Forbidden, refused.Detail);
            throw;
        }

        await RecordAsync(context, context.Response.StatusCode, detail: null);
    }

    private async Task RecordAsync(HttpContext context, int status, string? detail)
    {
        if (status is not (StatusCodes.Status401Unauthorized or StatusCodes.Status403Forbidden) || AuditedRequests.IsRecorded(context))
        {
            return;
        }

        var unauthenticated = status == StatusCodes.Status401Unauthorized;
        var entry = AuditedRequests.Entry(
            context,
            context.GetRouteValue("tenantId") as string,
            unauthenticated ? "request.unauthenticated" : "request.forbidden",
            $"{context.Request.Method} {context.Request.Path}",
            unauthenticated ? "rejected:unauthenticated" : "rejected:forbidden",
            detail ?? (unauthenticated ? "No valid API key was presented." : "The caller's role does not allow this."));
        try
        {
            // The answer is already sent (or about to be): a failure here must not turn into an error for the caller.
            await audit.RecordAsync(entry, CancellationToken.None);
        }
        catch (Exception exception)
        {
            LogNotRecorded(exception, status, entry.RequestId);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "A {Status} refusal of request {RequestId} could not be recorded in the audit log")]
    private partial void LogNotRecorded(Exception exception, int status, string? requestId);
}

/// <summary>What a mutation's record says once it went through: its target (e.g. the id it created), details, the state after.</summary>
public sealed record AuditOutcome(string? Target = null, string? Details = null, object? After = null);
