using System.Security.Claims;

namespace ControlPlane.Security;

/// <summary>
/// Who a request acts for, as claims: an API key or a person, the platform role it holds (if any) and its role in each
/// tenant it belongs to. Every way in (API key, portal cookie, SSO) builds the same shape with <see cref="Create"/>, so
/// one authorization check (<see cref="Access"/>) serves them all.
/// </summary>
public static class Principals
{
    public const string KindClaim = "actor_kind";
    public const string PlatformRoleClaim = "platform_role";
    public const string MembershipClaim = "membership";

    public const string ApiKeyKind = "apikey";
    public const string UserKind = "user";

    public static ClaimsPrincipal Create(
        string kind, string id, string name, string? platformRole, IEnumerable<(string TenantId, string Role)> memberships, string authenticationType)
    {
        var claims = new List<Claim>
        {
            new(ClaimTypes.NameIdentifier, id),
            new(ClaimTypes.Name, name),
            new(KindClaim, kind),
        };
        if (platformRole is not null)
        {
            claims.Add(new Claim(PlatformRoleClaim, platformRole));
        }

        claims.AddRange(memberships.Select(membership => new Claim(MembershipClaim, $"{membership.TenantId} {membership.Role}")));
        return new ClaimsPrincipal(new ClaimsIdentity(claims, authenticationType));
    }

    /// <summary>Who did it, as recorded on operations and in the audit log: an id and a name, never a secret.</summary>
    public static string Actor(this ClaimsPrincipal user) =>
        user.Identity?.IsAuthenticated == true
            ? $"{user.FindFirstValue(KindClaim) ?? ApiKeyKind}:{user.FindFirstValue(ClaimTypes.NameIdentifier)} ({user.FindFirstValue(ClaimTypes.Name)})"
            : "anonymous";

    public static string? Id(this ClaimsPrincipal user) => user.FindFirstValue(ClaimTypes.NameIdentifier);

    public static bool IsPerson(this ClaimsPrincipal user) => user.FindFirstValue(KindClaim) == UserKind;

    public static Role? PlatformRole(this ClaimsPrincipal user) => Roles.Find(user.FindFirstValue(PlatformRoleClaim), PermissionScope.Platform);

    /// <summary>The caller's role in <paramref name="tenantId"/> as a member; null when it is not one.</summary>
    public static Role? TenantRole(this ClaimsPrincipal user, string tenantId)
    {
        foreach (var claim in user.FindAll(MembershipClaim))
        {
            var separator = claim.Value.IndexOf(' ', StringComparison.Ordinal);
            if (separator > 0 && claim.Value.AsSpan(0, separator).SequenceEqual(tenantId))
            {
                return Roles.Find(claim.Value[(separator + 1)..], PermissionScope.Tenant);
            }
        }

        return null;
    }

    /// <summary>Every tenant the caller is a member of, with its role there.</summary>
    public static IEnumerable<(string TenantId, Role Role)> Memberships(this ClaimsPrincipal user) =>
        user.FindAll(MembershipClaim)
            .Select(claim => claim.Value.Split(' ', 2))
            .Where(parts => parts.Length == 2 && Roles.Find(parts[1], PermissionScope.Tenant) is not null)
            .Select(parts => (parts[0], Roles.Find(parts[1], PermissionScope.Tenant)!));

    public static bool IsPlatformAdmin(this ClaimsPrincipal user) => user.PlatformRole()?.Name == Roles.PlatformAdmin;
}
