using ControlPlane.Auditing;
using ControlPlane.Errors;
using ControlPlane.Operations;

namespace ControlPlane.Api;

public static class ApiResults
{
    public static string OperationLocation(string tenantId, string operationId) => $"/api/v1/tenants/{tenantId}/operations/{operationId}";

    /// <summary><c>202 Accepted</c> with the operation and a <c>Location</c> to poll it.</summary>
    public static IResult Accepted(OperationRecord operation) =>
        TypedResults.Accepted(OperationLocation(operation.TenantId, operation.Id), operation);

    /// <summary>
    /// Runs a mutation (or a read of a secret or an export) and records it under the caller's identity: an intent before
    /// it runs, then its outcome (<paramref name="outcome"/>, or its refusal or failure). Both are written whatever the
    /// client does meanwhile: a client that disconnects does not cancel the record, and the mutation, which never sees
    /// the request's cancellation, runs to its end. A crash in between leaves the intent, which reads "outcome unknown".
    /// </summary>
    public static async Task<T> AuditedAsync<T>(
        this AuditLog audit,
        HttpContext context,
        string? tenantId,
        string action,
        string? target,
        Func<Task<T>> mutation,
        Func<T, AuditOutcome> describe,
        string outcome = "accepted",
        object? before = null)
    {
        AuditedRequests.MarkRecorded(context);
        var intent = AuditedRequests.Entry(context, tenantId, action, target, AuditLog.Unknown) with { Before = AuditedRequests.State(before) };
        var intentId = await audit.BeginAsync(intent, CancellationToken.None);
        T result;
        try
        {
            result = await mutation();
        }
        catch (Exception refused)
        {
            var (ended, detail) = refused switch
            {
                ControlPlaneException domain => ($"rejected:{domain.Type}", domain.Detail),
                RequestValidationException invalid => ("rejected:validation-failed", string.Join(" ", invalid.Errors.SelectMany(error => error.Value))),
                _ => ($"failed:{refused.GetType().Name}", "The request failed on the control plane's side; see its trace id."),
            };
            await audit.CompleteAsync(intentId, intent with { Outcome = ended, Details = detail, Before = null }, CancellationToken.None);
            throw;
        }

        var described = describe(result);
        await audit.CompleteAsync(
            intentId,
            intent with { Target = described.Target ?? target, Outcome = outcome, Details = described.Details, Before = null, After = AuditedRequests.State(described.After) },
            CancellationToken.None);
        return result;
    }
}
