using System.Security.Claims;
using ControlPlane.Api;
using ControlPlane.Errors;
using ControlPlane.Tenants;
using ControlPlane.Security;

namespace ControlPlane.Operations;

public static class OperationEndpoints
{
    public static IEndpointRouteBuilder MapOperations(this IEndpointRouteBuilder app)
    {
        var operations = app.MapGroup("/api/v1/tenants/{tenantId}/operations").WithTags("Operations");
        operations.MapGet("/{operationId}", GetAsync).WithSummary("Get an operation (poll the Location of a 202)");
        operations.MapPost("/{operationId}:cancel", CancelAsync).WithSummary("Cancel a running operation").Produces<OperationRecord>(202);
        return app;
    }

    private static async Task<OperationRecord> GetAsync(string tenantId, string operationId, ClaimsPrincipal user, IGrainFactory grains)
    {
        await grains.RequireTenantAsync(user, tenantId);
        return (Ids.IsWellFormed(operationId, "op") ? await grains.GetGrain<ITenantGrain>(tenantId).GetOperationAsync(operationId) : null)
            ?? throw Problems.NotFound("operation", operationId);
    }

    private static async Task<IResult> CancelAsync(string tenantId, string operationId, HttpContext context, IGrainFactory grains)
    {
        await grains.RequireTenantAsync(context.User, tenantId);
        if (!Ids.IsWellFormed(operationId, "op"))
        {
            throw Problems.NotFound("operation", operationId);
        }

        var operation = await ApiResults.AuditedAsync(
            context,
            tenantId,
            "operation.cancel",
            operationId,
            () => grains.GetGrain<ITenantGrain>(tenantId).CancelOperationAsync(operationId, context.User.Actor()),
            cancelled => (null, $"instance {cancelled.InstanceId}"));
        return ApiResults.Accepted(operation);
    }
}
