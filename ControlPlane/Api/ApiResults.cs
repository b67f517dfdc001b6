using ControlPlane.Auditing;
using ControlPlane.Errors;
using ControlPlane.Operations;
using ControlPlane.Security;

namespace ControlPlane.Api;

public static class ApiResults
{
    public static string OperationLocation(string tenantId, string operationId) => $"/api/v1/tenants/{tenantId}/operations/{operationId}";

    /// <summary><c>202 Accepted</c> with the operation and a <c>Location</c> to poll it.</summary>
    public static IResult Accepted(OperationRecord operation) =>
        TypedResults.Accepted(OperationLocation(operation.TenantId, operation.Id), operation);

    /// <summary>
    /// Runs a mutation (or a read of a secret) and records it, or its refusal, in the audit log under the caller's
    /// identity, with <paramref name="outcome"/> when it went through.
    /// </summary>
    public static async Task<T> AuditedAsync<T>(
        this AuditLog audit,
        HttpContext context,
        string? tenantId,
        string action,
        string? target,
        Func<Task<T>> mutation,
        Func<T, (string? Target, string? Details)> describe,
        string outcome = "accepted")
    {
        var actor = context.User.Actor();
        try
        {
            var result = await mutation();
            var (resultTarget, details) = describe(result);
            await audit.RecordAsync(new AuditEntry(actor, tenantId, action, resultTarget ?? target, outcome, details), context.RequestAborted);
            return result;
        }
        catch (ControlPlaneException refused)
        {
            await audit.RecordAsync(new AuditEntry(actor, tenantId, action, target, $"rejected:{refused.Type}", refused.Detail), CancellationToken.None);
            throw;
        }
    }
}
