using System.Security.Claims;
using ControlPlane.Errors;

namespace ControlPlane.Security;

public static class Principals
{
    public const string TenantClaim = "tenant";

    /// <summary>Who did it, as recorded on operations and in the audit log: the key's id and name, never its secret.</summary>
    public static string Actor(this ClaimsPrincipal user) =>
        $"apikey:{user.FindFirstValue(ClaimTypes.NameIdentifier)} ({user.FindFirstValue(ClaimTypes.Name)})";

    public static bool IsPlatformAdmin(this ClaimsPrincipal user) => user.IsInRole(Roles.PlatformAdmin);

    /// <summary>
    /// Refuses access to another tenant's resources with the same 404 as a tenant that does not exist,
    /// so a caller cannot learn which tenant ids are real.
    /// </summary>
    public static void EnsureCanAccessTenant(this ClaimsPrincipal user, string tenantId)
    {
        if (!user.IsPlatformAdmin() && user.FindFirstValue(TenantClaim) != tenantId)
        {
            throw Problems.NotFound("tenant", tenantId);
        }
    }
}
