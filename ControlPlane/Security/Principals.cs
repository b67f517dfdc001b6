using System.Security.Claims;

namespace ControlPlane.Security;

public static class Principals
{
    public const string TenantClaim = "tenant";

    /// <summary>Who did it, as recorded on operations and in the audit log: the key's id and name, never its secret.</summary>
    public static string Actor(this ClaimsPrincipal user) =>
        $"apikey:{user.FindFirstValue(ClaimTypes.NameIdentifier)} ({user.FindFirstValue(ClaimTypes.Name)})";

    public static bool IsPlatformAdmin(this ClaimsPrincipal user) => user.IsInRole(Roles.PlatformAdmin);
}
