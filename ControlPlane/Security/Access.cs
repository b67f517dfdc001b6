using System.Security.Claims;
using ControlPlane.Errors;

namespace ControlPlane.Security;

public enum AccessVerdict
{
    Allowed,

    /// <summary>The caller has no standing in the tenant: it is told the tenant does not exist, as for a made-up id.</summary>
    NotFound,

    /// <summary>The caller may see the tenant (or is on the platform) but its role does not grant the permission.</summary>
    Forbidden,
}

/// <summary>The one authorization check: the API's endpoint filter and the portal's pages both ask it.</summary>
public static class Access
{
    public static AccessVerdict Decide(ClaimsPrincipal user, Permission permission, string? tenantId)
    {
        var platformRole = user.PlatformRole();
        if (platformRole?.Allows(permission) == true)
        {
            return AccessVerdict.Allowed;
        }

        if (tenantId is null || permission.Scope == PermissionScope.Platform)
        {
            return tenantId is not null && platformRole is null && user.TenantRole(tenantId) is null ? AccessVerdict.NotFound : AccessVerdict.Forbidden;
        }

        var tenantRole = user.TenantRole(tenantId);
        if (tenantRole is null)
        {
            return platformRole is null ? AccessVerdict.NotFound : AccessVerdict.Forbidden;
        }

        return tenantRole.Allows(permission) ? AccessVerdict.Allowed : AccessVerdict.Forbidden;
    }

    public static bool Allows(this ClaimsPrincipal user, Permission permission, string? tenantId = null) =>
        Decide(user, permission, tenantId) == AccessVerdict.Allowed;

    /// <summary>Whether the caller has any standing in the tenant (a membership, or a platform role).</summary>
    public static bool MaySee(this ClaimsPrincipal user, string tenantId) => user.PlatformRole() is not null || user.TenantRole(tenantId) is not null;

    /// <summary>Throws the refusal <see cref="Decide"/> gives: a 404 for a tenant the caller cannot see, a 403 otherwise.</summary>
    public static void Demand(this ClaimsPrincipal user, Permission permission, string? tenantId)
    {
        switch (Decide(user, permission, tenantId))
        {
            case AccessVerdict.NotFound:
                throw Problems.NotFound("tenant", tenantId!);
            case AccessVerdict.Forbidden:
                throw Forbidden(user, permission, tenantId);
        }
    }

    /// <summary>
    /// Whether the caller reads instance credentials on a platform role that must say why (SRE): such reads need a
    /// reason, sent as <see cref="AccessReasonHeader"/>, which the audit record keeps.
    /// </summary>
    public static bool NeedsRecordedReason(this ClaimsPrincipal user, string tenantId) =>
        user.TenantRole(tenantId) is null && user.PlatformRole()?.Name == Roles.Sre;

    public const string AccessReasonHeader = "X-Access-Reason";

    /// <summary>
    /// A caller never hands out, changes or takes away a role (of a key or a member) that can do more than its own:
    /// an admin cannot make or unmake owners, a member key cannot mint an admin key.
    /// </summary>
    public static void DemandMayGrant(this ClaimsPrincipal user, string? tenantId, Role role)
    {
        var granter = user.PlatformRole() ?? (tenantId is null ? null : user.TenantRole(tenantId));
        if (granter is null || !Roles.MayGrant(granter, role))
        {
            throw new ControlPlaneException(
                ProblemKind.Forbidden,
                "role-exceeds-caller",
                "That role can do more than yours",
                $"A caller with role '{granter?.Name}' cannot give, change or take away role '{role.Name}', which grants more. Ask an owner.",
                new Dictionary<string, string> { ["role"] = role.Name });
        }
    }

    public static ControlPlaneException Forbidden(ClaimsPrincipal user, Permission permission, string? tenantId)
    {
        var role = (tenantId is null ? null : user.TenantRole(tenantId)) ?? user.PlatformRole();
        var held = role is null ? "no role here" : $"role '{role.Name}'";
        return new ControlPlaneException(
            ProblemKind.Forbidden,
            "forbidden",
            "Not allowed",
            $"This caller has {held}, which does not grant '{permission}'. Ask an owner or admin of the tenant for a role that does.",
            new Dictionary<string, string> { ["permission"] = permission.ToString() });
    }
}

/// <summary>Endpoint metadata: the permission an endpoint requires. Every API endpoint has one (a test enforces it).</summary>
public sealed record RequiredPermission(Permission Permission);

/// <summary>Endpoint metadata: the endpoint is open to any authenticated caller (who-am-I, the catalog).</summary>
public sealed record AnyAuthenticatedCaller;

public static class PermissionEndpoints
{
    /// <summary>
    /// Requires <paramref name="permission"/>, checked against the route's <c>{tenantId}</c> when it has one, before the
    /// handler runs: another tenant's id answers 404, a role without the permission 403.
    /// </summary>
    public static TBuilder Requires<TBuilder>(this TBuilder builder, Permission permission)
        where TBuilder : IEndpointConventionBuilder
    {
        builder.WithMetadata(new RequiredPermission(permission));
        builder.AddEndpointFilter(async (context, next) =>
        {
            var tenantId = context.HttpContext.GetRouteValue("tenantId") as string;
            context.HttpContext.User.Demand(permission, tenantId);
            return await next(context);
        });
        return builder;
    }

    /// <summary>Open to every authenticated caller; says so, so the route table shows it was decided, not forgotten.</summary>
    public static TBuilder ForAnyAuthenticatedCaller<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new AnyAuthenticatedCaller());
}
