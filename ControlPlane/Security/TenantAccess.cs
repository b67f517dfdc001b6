using System.Security.Claims;
using ControlPlane.Errors;
using ControlPlane.Instances;
using ControlPlane.Tenants;

namespace ControlPlane.Security;

/// <summary>
/// The one place that decides whether a caller may see a tenant's resources. Another tenant's tenant, instance or
/// operation answers the same 404 as one that does not exist, so a caller cannot learn which ids are real.
/// </summary>
public static class TenantAccess
{
    /// <summary>The tenant, when it exists and the caller may see it.</summary>
    public static async Task<ITenantGrain> RequireTenantAsync(this IGrainFactory grains, ClaimsPrincipal user, string tenantId)
    {
        var tenant = grains.GetGrain<ITenantGrain>(tenantId);
        if (!user.MaySee(tenantId) || !Ids.IsWellFormed(tenantId, "tnt") || !await tenant.ExistsAsync())
        {
            throw Problems.NotFound("tenant", tenantId);
        }

        return tenant;
    }

    /// <summary>An instance of this tenant that the caller may see; any other instance id is a 404, whoever owns it.</summary>
    public static async Task<(IInstanceGrain Grain, InstanceView View)> RequireInstanceAsync(
        this IGrainFactory grains, ClaimsPrincipal user, string tenantId, string instanceId)
    {
        await grains.RequireTenantAsync(user, tenantId);
        var grain = grains.GetGrain<IInstanceGrain>(instanceId);
        return Ids.IsWellFormed(instanceId, "ins") && await grain.GetAsync() is { } view && view.TenantId == tenantId
            ? (grain, view)
            : throw Problems.NotFound("instance", instanceId);
    }
}
