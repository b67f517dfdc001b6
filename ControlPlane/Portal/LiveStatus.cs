using System.Security.Claims;
using ControlPlane.Api;
using ControlPlane.Instances;
using ControlPlane.Operations;
using ControlPlane.Security;

namespace ControlPlane.Portal;

/// <summary>An instance as a row of the portal shows it: state, health and, while an operation runs, how far it got.</summary>
public sealed record InstanceStatus(
    string Id, string Name, string Product, string Version, string Size, string State, string Health, string? HealthDetail,
    string? Endpoint, string? FailureReason, string? Activity)
{
    /// <summary>The badge's tone: ok, busy, warn or bad (the stylesheet colours them; the text always says the state).</summary>
    public string Tone => State switch
    {
        nameof(InstanceLifecycle.Running) when Health == nameof(InstanceHealth.Healthy) => "ok",
        nameof(InstanceLifecycle.Running) => "warn",
        nameof(InstanceLifecycle.Failed) => "bad",
        nameof(InstanceLifecycle.Stopped) or nameof(InstanceLifecycle.Deleted) => "idle",
        _ => "busy",
    };
}

public sealed record LiveInstances(IReadOnlyList<InstanceStatus> Instances);

/// <summary>
/// What the dashboard and the instance page poll (every 2 s, portal.js) to show state without a reload: the same rows
/// the server rendered, read with the API's permission (<c>instances:read</c>) on the portal's cookie.
/// </summary>
public static class LiveStatus
{
    public static bool IsLiveRequest(HttpRequest request) => request.Path.Value?.EndsWith("/live", StringComparison.Ordinal) == true;

    public static IEndpointRouteBuilder MapLiveStatus(this IEndpointRouteBuilder app)
    {
        var live = app.MapGroup("/portal/tenants/{tenantId}").RequireAuthorization(PortalHosting.Policy).ExcludeFromDescription();
        live.MapGet("/live", async (string tenantId, ClaimsPrincipal user, IGrainFactory grains) =>
            new LiveInstances(await ListAsync(grains, user, tenantId))).Requires(Permissions.InstancesRead);
        live.MapGet("/instances/{instanceId}/live", async (string tenantId, string instanceId, ClaimsPrincipal user, IGrainFactory grains) =>
        {
            var (grain, view) = await grains.RequireInstanceAsync(user, tenantId, instanceId);
            return new LiveInstances([await DescribeAsync(grain, view)]);
        }).Requires(Permissions.InstancesRead);
        return app;
    }

    /// <summary>The tenant's instances (up to a hundred: the portal pages no further yet), as rows.</summary>
    public static async Task<IReadOnlyList<InstanceStatus>> ListAsync(IGrainFactory grains, ClaimsPrincipal user, string tenantId)
    {
        var tenant = await grains.RequireTenantAsync(user, tenantId);
        var page = await tenant.ListInstancesAsync(includeDeleted: false, PageRequest.First(PageRequest.MaxSize));
        return await Task.WhenAll(page.Items.Select(view => DescribeAsync(grains.GetGrain<IInstanceGrain>(view.Id), view)));
    }

    public static async Task<InstanceStatus> DescribeAsync(IInstanceGrain grain, InstanceView view)
    {
        var operation = view.ActiveOperationId is { } operationId ? await grain.GetOperationAsync(operationId) : null;
        return new InstanceStatus(
            view.Id, view.Name, view.Product, view.Version, view.Size, view.State.ToString(), view.Health.ToString(), view.HealthDetail,
            view.Endpoint?.ToString(), view.FailureReason, operation is null ? null : Progress(operation));
    }

    /// <summary>"Create: step 3, start-process" — what a person watching needs to know is happening.</summary>
    public static string Progress(OperationRecord operation)
    {
        var current = operation.Steps.LastOrDefault();
        return current is null
            ? $"{operation.Type}: {operation.Status.ToString().ToLowerInvariant()}"
            : $"{operation.Type}: step {operation.Steps.Length}, {current.Name.Replace('-', ' ')}";
    }
}
