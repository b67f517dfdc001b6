namespace ControlPlane.Security;

/// <summary>Where a permission applies: inside one tenant, or to the platform as a whole.</summary>
public enum PermissionScope
{
    /// <summary>Granted by a tenant role within its tenant, or by a platform role in every tenant.</summary>
    Tenant,

    /// <summary>Granted only by a platform role.</summary>
    Platform,
}

/// <summary>A verb on a resource, e.g. <c>instances:operate</c>. Roles are sets of these.</summary>
public sealed record Permission(string Resource, string Verb, PermissionScope Scope)
{
    public override string ToString() => $"{Resource}:{Verb}";
}

/// <summary>Every permission the API checks. An endpoint names exactly one (see <see cref="PermissionEndpoints"/>).</summary>
public static class Permissions
{
    public static readonly Permission TenantRead = Tenant("tenant", "read");
    public static readonly Permission TenantManage = Tenant("tenant", "manage");
    public static readonly Permission InstancesRead = Tenant("instances", "read");
    public static readonly Permission InstancesOperate = Tenant("instances", "operate");
    public static readonly Permission CredentialsRead = Tenant("instance-credentials", "read");
    public static readonly Permission CredentialsRotate = Tenant("instance-credentials", "rotate");
    public static readonly Permission OperationsRead = Tenant("operations", "read");
    public static readonly Permission SlaRead = Tenant("sla", "read");
    public static readonly Permission UsageRead = Tenant("usage", "read");
    public static readonly Permission MembersRead = Tenant("members", "read");
    public static readonly Permission MembersManage = Tenant("members", "manage");
    public static readonly Permission ApiKeysRead = Tenant("api-keys", "read");
    public static readonly Permission ApiKeysManage = Tenant("api-keys", "manage");
    public static readonly Permission SsoRead = Tenant("sso", "read");
    public static readonly Permission SsoManage = Tenant("sso", "manage");
    public static readonly Permission AuditRead = Tenant("audit", "read");

    public static readonly Permission TenantsCreate = Platform("tenants", "create");
    public static readonly Permission TenantsList = Platform("tenants", "list");
    public static readonly Permission MaintenanceManage = Platform("maintenance", "manage");
    public static readonly Permission SlaClose = Platform("sla-months", "close");
    public static readonly Permission SlaAssessmentsRead = Platform("sla-assessments", "read");
    public static readonly Permission FinanceRead = Platform("finance", "read");
    public static readonly Permission StripeSync = Platform("stripe", "sync");
    public static readonly Permission PlatformMembersManage = Platform("platform-members", "manage");
    public static readonly Permission PlatformApiKeysManage = Platform("platform-api-keys", "manage");
    public static readonly Permission PlatformAuditRead = Platform("platform-audit", "read");
    public static readonly Permission ComplianceExport = Platform("compliance-evidence", "export");

    public static IReadOnlyList<Permission> All { get; } =
    [
        TenantRead, TenantManage, InstancesRead, InstancesOperate, CredentialsRead, CredentialsRotate, OperationsRead, SlaRead, UsageRead,
        MembersRead, MembersManage, ApiKeysRead, ApiKeysManage, SsoRead, SsoManage, AuditRead,
        TenantsCreate, TenantsList, MaintenanceManage, SlaClose, SlaAssessmentsRead, FinanceRead, StripeSync,
        PlatformMembersManage, PlatformApiKeysManage, PlatformAuditRead, ComplianceExport,
    ];

    private static Permission Tenant(string resource, string verb) => new(resource, verb, PermissionScope.Tenant);

    private static Permission Platform(string resource, string verb) => new(resource, verb, PermissionScope.Platform);
}

/// <summary>A named set of permissions, held by a member of a tenant (tenant roles) or by a platform operator.</summary>
public sealed record Role(string Name, PermissionScope Scope, string Description, IReadOnlySet<Permission> Grants)
{
    public bool Allows(Permission permission) => Grants.Contains(permission);
}

/// <summary>The roles, as data: who may do what is read here and nowhere else.</summary>
public static class Roles
{
    public const string Owner = "owner";
    public const string Admin = "admin";
    public const string Member = "member";
    public const string Viewer = "viewer";
    public const string BillingViewer = "billing-viewer";

    /// <summary>Operates the whole platform: every tenant, every instance.</summary>
    public const string PlatformAdmin = "platform-admin";

    /// <summary>Operates every tenant's instances; reads instance credentials only with a recorded reason.</summary>
    public const string Sre = "sre";

    /// <summary>Billing and reconciliation across tenants; changes no instance.</summary>
    public const string Finance = "finance";

    private static readonly Permission[] s_tenantReading =
        [Permissions.TenantRead, Permissions.InstancesRead, Permissions.OperationsRead, Permissions.SlaRead, Permissions.MembersRead];

    private static readonly Permission[] s_tenantAll = Permissions.All.Where(p => p.Scope == PermissionScope.Tenant).ToArray();

    public static IReadOnlyList<Role> All { get; } =
    [
        new(Owner, PermissionScope.Tenant, "Everything in the tenant, including SSO and its owners.", Set(s_tenantAll)),
        new(Admin, PermissionScope.Tenant, "Everything in the tenant except SSO settings and owners.",
            Set(s_tenantAll.Where(p => p != Permissions.SsoManage))),
        new(Member, PermissionScope.Tenant, "Creates and operates instances, reads and rotates their credentials; no team or key management.",
            Set([.. s_tenantReading, Permissions.InstancesOperate, Permissions.CredentialsRead, Permissions.CredentialsRotate])),
        new(Viewer, PermissionScope.Tenant, "Reads instances, operations and the SLA; changes nothing, sees no credentials.",
            Set(s_tenantReading)),
        new(BillingViewer, PermissionScope.Tenant, "Reads the tenant, its usage and SLA; nothing else.",
            Set([Permissions.TenantRead, Permissions.UsageRead, Permissions.SlaRead])),
        new(PlatformAdmin, PermissionScope.Platform, "Everything, in every tenant.", Set(Permissions.All)),
        new(Sre, PermissionScope.Platform, "Operates every tenant; instance credentials only with a recorded reason.",
            Set([
                .. s_tenantReading, Permissions.InstancesOperate, Permissions.CredentialsRead, Permissions.CredentialsRotate, Permissions.ApiKeysRead,
                Permissions.SsoRead, Permissions.AuditRead, Permissions.TenantsList, Permissions.MaintenanceManage,
                Permissions.StripeSync, Permissions.PlatformAuditRead,
            ])),
        new(Finance, PermissionScope.Platform, "Billing, SLA assessments and reconciliation across tenants; nothing else.",
            Set([
                Permissions.TenantRead, Permissions.UsageRead, Permissions.SlaRead, Permissions.TenantsList,
                Permissions.SlaClose, Permissions.SlaAssessmentsRead, Permissions.FinanceRead, Permissions.AuditRead, Permissions.PlatformAuditRead,
            ])),
    ];

    public static IReadOnlyList<string> TenantRoleNames { get; } = All.Where(r => r.Scope == PermissionScope.Tenant).Select(r => r.Name).ToArray();

    public static IReadOnlyList<string> PlatformRoleNames { get; } = All.Where(r => r.Scope == PermissionScope.Platform).Select(r => r.Name).ToArray();

    public static Role? Find(string? name) => All.FirstOrDefault(role => role.Name == name);

    /// <summary>What a request naming an unknown <paramref name="name"/> for <paramref name="scope"/> is told: the roles it may name.</summary>
    public static string UnknownRoleError(string? name, PermissionScope scope) =>
        $"role must be one of {string.Join(", ", scope == PermissionScope.Tenant ? TenantRoleNames : PlatformRoleNames)} (it is '{name}').";

    /// <summary>The role, when it exists at this scope.</summary>
    public static Role? Find(string? name, PermissionScope scope) => Find(name) is { } role && role.Scope == scope ? role : null;

    /// <summary>Whether a holder of <paramref name="granter"/> may hand out <paramref name="granted"/>: never more than it has.</summary>
    public static bool MayGrant(Role granter, Role granted) => granted.Grants.IsSubsetOf(granter.Grants);

    private static HashSet<Permission> Set(IEnumerable<Permission> permissions) => [.. permissions];
}
