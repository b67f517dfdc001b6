using ControlPlane.Auditing;
using ControlPlane.Errors;
using ControlPlane.Operations;
using ControlPlane.Security;

namespace ControlPlane.Api;

/// <summary>A page of resources; a wrapper so the list can grow paging fields without breaking clients.</summary>
public sealed record ItemList<T>(IReadOnlyList<T> Items);

public static class ApiResults
{
    public static string OperationLocation(string tenantId, string operationId) => $"/api/v1/tenants/{tenantId}/operations/{operationId}";

    /// <summary><c>202 Accepted</c> with the operation and a <c>Location</c> to poll it.</summary>
    public static IResult Accepted(OperationRecord operation) =>
        TypedResults.Accepted(OperationLocation(operation.TenantId, operation.Id), operation);

    /// <summary>Runs a mutation and records it, or its refusal, in the audit log under the caller's identity.</summary>
    public static async Task<T> AuditedAsync<T>(
        HttpContext context,
        string? tenantId,
        string action,
        string? target,
        Func<Task<T>> mutation,
        Func<T, (string? Target, string? Details)> describe)
    {
        var audit = context.RequestServices.GetRequiredService<AuditLog>();
        var actor = context.User.Actor();
        try
        {
            var result = await mutation();
            var (resultTarget, details) = describe(result);
            await audit.RecordAsync(new AuditEntry(actor, tenantId, action, resultTarget ?? target, "accepted", details), context.RequestAborted);
            return result;
        }
        catch (ControlPlaneException refused)
        {
            await audit.RecordAsync(new AuditEntry(actor, tenantId, action, target, $"rejected:{refused.Type}", refused.Detail), CancellationToken.None);
            throw;
        }
    }
}
