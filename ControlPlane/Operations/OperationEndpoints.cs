using System.Security.Claims;
using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Errors;
using ControlPlane.Security;
using ControlPlane.Tenants;

namespace ControlPlane.Operations;

public static class OperationEndpoints
{
    public static IEndpointRouteBuilder MapOperations(this IEndpointRouteBuilder app)
    {
        var operations = app.MapGroup("/api/v1/tenants/{tenantId}/operations").WithTags("Operations");
        operations.MapGet("/{operationId}", GetAsync).Requires(Permissions.OperationsRead).WithSummary("Get an operation (poll the Location of a 202)");
        operations.MapPost("/{operationId}:cancel", CancelAsync).Requires(Permissions.InstancesOperate).WithSummary("Cancel a running operation").Produces<OperationRecord>(202);
        return app;
    }

    /// <summary>An operation; while it runs, <c>Retry-After</c> says when polling again is worth it.</summary>
    private static async Task<OperationRecord> GetAsync(string tenantId, string operationId, ClaimsPrincipal user, IGrainFactory grains, HttpResponse response)
    {
        var tenant = await grains.RequireTenantAsync(user, tenantId);
        var operation = (Ids.IsOperationId(operationId) ? await tenant.GetOperationAsync(operationId) : null)
            ?? throw Problems.NotFound("operation", operationId);
        if (operation.IsActive)
        {
            response.Headers.RetryAfter = "1";
        }

        return operation;
    }

    private static async Task<IResult> CancelAsync(string tenantId, string operationId, HttpContext context, IGrainFactory grains, AuditLog audit) =>
        ApiResults.Accepted(await CancelOperationAsync(tenantId, operationId, context, grains, audit));

    /// <summary>Asks the operation's instance to cancel it; audited (API and portal). Refused once it passed its point of no return.</summary>
    public static async Task<OperationRecord> CancelOperationAsync(string tenantId, string operationId, HttpContext context, IGrainFactory grains, AuditLog audit)
    {
        var tenant = await grains.RequireTenantAsync(context.User, tenantId);
        if (!Ids.IsOperationId(operationId))
        {
            throw Problems.NotFound("operation", operationId);
        }

        return await audit.AuditedAsync(
            context,
            tenantId,
            "operation.cancel",
            operationId,
            () => tenant.CancelOperationAsync(operationId, context.User.Actor()),
            cancelled => new AuditOutcome(Details: $"instance {cancelled.InstanceId}", After: new { status = cancelled.Status.ToString() }));
    }
}
