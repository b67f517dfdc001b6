using System.Globalization;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace ControlPlane.Tests.Support;

/// <summary>
/// The ids a request needs: a prepared tenant with a running instance, one of its operations and one of its maintenance
/// windows. <see cref="Unique"/> gives names that do not collide when an entry is requested more than once.
/// </summary>
public sealed record EndpointContext(string TenantId, string InstanceId, string OperationId, string WindowId, DateTimeOffset Now)
{
    private int _counter;

    /// <summary>An API key of the tenant, and one of the platform.</summary>
    public string KeyId { get; init; } = "";

    public string PlatformKeyId { get; init; } = "";

    /// <summary>A member of the tenant (not its owner), and a person with a platform role.</summary>
    public string UserId { get; init; } = "";

    public string PlatformUserId { get; init; } = "";

    public string Unique(string prefix) => $"{prefix}-{Interlocked.Increment(ref _counter).ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The last month that has ended, as yyyy-MM.</summary>
    public string LastMonth => Now.AddMonths(-1).ToString("yyyy-MM", CultureInfo.InvariantCulture);
}

/// <summary>
/// One API endpoint and a valid request to it. <see cref="Mutates"/>: it changes state (every non-GET does);
/// <see cref="ReadsSecret"/>: a GET that reads a secret or an export. <see cref="AuditAction"/>: the action its audit
/// record carries, for every endpoint that must be audited.
/// </summary>
public sealed record EndpointEntry(
    string Method, string Route, Func<EndpointContext, (string Path, object? Body)> Request, bool Mutates = false, bool ReadsSecret = false, string? AuditAction = null)
{
    public bool Audited => Mutates || ReadsSecret;

    public override string ToString() => $"{Method} {Route}";
}

/// <summary>
/// Every endpoint of the API (<c>/api/…</c>), each with a way to make a valid request against a prepared tenant. A route
/// in the app's route table without an entry here fails <see cref="Uncatalogued"/>'s test, so a new endpoint needs one.
/// </summary>
public static class EndpointCatalog
{
    private const string Tenant = "/api/v1/tenants/{tenantId}";
    private const string Instance = Tenant + "/instances/{instanceId}";

    public static IReadOnlyList<EndpointEntry> Entries { get; } =
    [
        Get("/api/v1/catalog", _ => "/api/v1/catalog"),

        new("POST", "/api/v1/tenants", c => ("/api/v1/tenants", new { name = c.Unique("tenant"), plan = "team" }), Mutates: true, AuditAction: "tenant.create"),
        Get("/api/v1/tenants", _ => "/api/v1/tenants"),
        Get(Tenant, c => $"/api/v1/tenants/{c.TenantId}"),
        new("POST", Tenant + ":changePlan", c => ($"/api/v1/tenants/{c.TenantId}:changePlan", new { plan = "team" }), Mutates: true, AuditAction: "tenant.plan.change"),

        new("POST", Tenant + "/instances", c => ($"/api/v1/tenants/{c.TenantId}/instances", new { name = c.Unique("extra"), product = "garnet", size = "small" }),
            Mutates: true, AuditAction: "instance.create"),
        Get(Tenant + "/instances", c => $"/api/v1/tenants/{c.TenantId}/instances"),
        Get(Instance, c => $"/api/v1/tenants/{c.TenantId}/instances/{c.InstanceId}"),
        new("PATCH", Instance, c => ($"/api/v1/tenants/{c.TenantId}/instances/{c.InstanceId}", new { size = "medium" }), Mutates: true, AuditAction: "instance.update"),
        new("POST", Instance + ":stop", c => ($"/api/v1/tenants/{c.TenantId}/instances/{c.InstanceId}:stop", null), Mutates: true, AuditAction: "instance.stop"),
        new("POST", Instance + ":start", c => ($"/api/v1/tenants/{c.TenantId}/instances/{c.InstanceId}:start", null), Mutates: true, AuditAction: "instance.start"),
        new("POST", Instance + ":restart", c => ($"/api/v1/tenants/{c.TenantId}/instances/{c.InstanceId}:restart", null), Mutates: true, AuditAction: "instance.restart"),
        new("POST", Instance + ":rotateCredentials", c => ($"/api/v1/tenants/{c.TenantId}/instances/{c.InstanceId}:rotateCredentials", null),
            Mutates: true, AuditAction: "instance.credentials.rotate"),
        new("DELETE", Instance, c => ($"/api/v1/tenants/{c.TenantId}/instances/{c.InstanceId}", null), Mutates: true, AuditAction: "instance.delete"),
        new("GET", Instance + "/credentials", c => ($"/api/v1/tenants/{c.TenantId}/instances/{c.InstanceId}/credentials", null),
            ReadsSecret: true, AuditAction: "instance.credentials.read"),
        Get(Instance + "/operations", c => $"/api/v1/tenants/{c.TenantId}/instances/{c.InstanceId}/operations"),
        Get(Instance + "/events", c => $"/api/v1/tenants/{c.TenantId}/instances/{c.InstanceId}/events"),

        Get(Tenant + "/operations/{operationId}", c => $"/api/v1/tenants/{c.TenantId}/operations/{c.OperationId}"),
        new("POST", Tenant + "/operations/{operationId}:cancel", c => ($"/api/v1/tenants/{c.TenantId}/operations/{c.OperationId}:cancel", null),
            Mutates: true, AuditAction: "operation.cancel"),

        Get(Instance + "/sla", c => $"/api/v1/tenants/{c.TenantId}/instances/{c.InstanceId}/sla"),
        Get(Tenant + "/sla", c => $"/api/v1/tenants/{c.TenantId}/sla"),
        Get(Tenant + "/usage", c => $"/api/v1/tenants/{c.TenantId}/usage"),
        Get(Tenant + "/sla/assessments", c => $"/api/v1/tenants/{c.TenantId}/sla/assessments"),
        Get(Tenant + "/maintenance-windows", c => $"/api/v1/tenants/{c.TenantId}/maintenance-windows"),
        new("POST", Tenant + "/maintenance-windows", c => ($"/api/v1/tenants/{c.TenantId}/maintenance-windows", MaintenanceWindow(c)),
            Mutates: true, AuditAction: "maintenance.announce"),
        new("DELETE", Tenant + "/maintenance-windows/{windowId}", c => ($"/api/v1/tenants/{c.TenantId}/maintenance-windows/{c.WindowId}", null),
            Mutates: true, AuditAction: "maintenance.withdraw"),
        new("POST", "/api/v1/sla/months/{month}:close", c => ($"/api/v1/sla/months/{c.LastMonth}:close", null), Mutates: true, AuditAction: "sla.month.close"),
        Get("/api/v1/sla/assessments", _ => "/api/v1/sla/assessments"),

        new("GET", "/api/v1/finance/reconciliation", c => ($"/api/v1/finance/reconciliation?period={c.LastMonth}&format=csv", null),
            ReadsSecret: true, AuditAction: "finance.reconciliation.export"),
        new("POST", "/api/v1/finance/tenants/{tenantId}/stripe:sync", c => ($"/api/v1/finance/tenants/{c.TenantId}/stripe:sync", null),
            Mutates: true, AuditAction: "finance.stripe.sync"),

        Get("/api/v1/me", _ => "/api/v1/me"),
        Get("/api/v1/roles", _ => "/api/v1/roles"),
        Get(Tenant + "/members", c => $"/api/v1/tenants/{c.TenantId}/members"),
        new("POST", Tenant + "/members", c => ($"/api/v1/tenants/{c.TenantId}/members", new { email = c.Unique("person") + "@example.com", role = "viewer" }),
            Mutates: true, AuditAction: "member.add"),
        new("PATCH", Tenant + "/members/{userId}", c => ($"/api/v1/tenants/{c.TenantId}/members/{c.UserId}", new { role = "member" }),
            Mutates: true, AuditAction: "member.role.change"),
        new("DELETE", Tenant + "/members/{userId}", c => ($"/api/v1/tenants/{c.TenantId}/members/{c.UserId}", null), Mutates: true, AuditAction: "member.remove"),
        Get(Tenant + "/api-keys", c => $"/api/v1/tenants/{c.TenantId}/api-keys"),
        new("POST", Tenant + "/api-keys", c => ($"/api/v1/tenants/{c.TenantId}/api-keys", new { name = c.Unique("key"), role = "viewer" }),
            Mutates: true, AuditAction: "api-key.create"),
        new("POST", Tenant + "/api-keys/{keyId}:rotate", c => ($"/api/v1/tenants/{c.TenantId}/api-keys/{c.KeyId}:rotate", new { oldKeyValidForMinutes = 5 }),
            Mutates: true, AuditAction: "api-key.rotate"),
        new("DELETE", Tenant + "/api-keys/{keyId}", c => ($"/api/v1/tenants/{c.TenantId}/api-keys/{c.KeyId}", null), Mutates: true, AuditAction: "api-key.revoke"),
        Get("/api/v1/platform/members", _ => "/api/v1/platform/members"),
        new("POST", "/api/v1/platform/members", c => ("/api/v1/platform/members", new { email = c.Unique("operator") + "@example.com", role = "sre" }),
            Mutates: true, AuditAction: "platform-member.add"),
        new("DELETE", "/api/v1/platform/members/{userId}", c => ($"/api/v1/platform/members/{c.PlatformUserId}", null),
            Mutates: true, AuditAction: "platform-member.remove"),
        Get("/api/v1/platform/api-keys", _ => "/api/v1/platform/api-keys"),
        new("POST", "/api/v1/platform/api-keys", c => ("/api/v1/platform/api-keys", new { name = c.Unique("platform-key"), role = "finance" }),
            Mutates: true, AuditAction: "api-key.create"),
        new("POST", "/api/v1/platform/api-keys/{keyId}:rotate", c => ($"/api/v1/platform/api-keys/{c.PlatformKeyId}:rotate", new { oldKeyValidForMinutes = 5 }),
            Mutates: true, AuditAction: "api-key.rotate"),
        new("DELETE", "/api/v1/platform/api-keys/{keyId}", c => ($"/api/v1/platform/api-keys/{c.PlatformKeyId}", null),
            Mutates: true, AuditAction: "api-key.revoke"),

        Get(Tenant + "/sso", c => $"/api/v1/tenants/{c.TenantId}/sso"),
        // The issuer answers nothing: the request passes validation and authorization, and the discovery check refuses it (422).
        new("PUT", Tenant + "/sso", c => ($"/api/v1/tenants/{c.TenantId}/sso", new
            {
                issuer = "http://127.0.0.1:9/",
                clientId = "controlplane",
                clientSecret = "not-a-real-secret",
                allowedEmailDomains = new[] { $"{c.TenantId}.example.com" },
                defaultRole = "viewer",
                enabled = true,
            }),
            Mutates: true, AuditAction: "sso.settings.put"),
        new("DELETE", Tenant + "/sso", c => ($"/api/v1/tenants/{c.TenantId}/sso", null), Mutates: true, AuditAction: "sso.settings.delete"),

        new("GET", "/api/v1/compliance/evidence", c => ($"/api/v1/compliance/evidence?from={Uri.EscapeDataString(c.Now.AddDays(-1).ToString("O"))}", null),
            ReadsSecret: true, AuditAction: "compliance.evidence.export"),

        Get(Tenant + "/audit", c => $"/api/v1/tenants/{c.TenantId}/audit"),
        new("GET", Tenant + "/audit:export", c => ($"/api/v1/tenants/{c.TenantId}/audit:export?format=jsonl", null), ReadsSecret: true, AuditAction: "audit.export"),
        Get("/api/v1/audit", _ => "/api/v1/audit"),
        new("GET", "/api/v1/audit:export", _ => ("/api/v1/audit:export?format=csv", null), ReadsSecret: true, AuditAction: "audit.export"),
        Get("/api/v1/audit:verify", _ => "/api/v1/audit:verify"),
    ];

    /// <summary>Every (method, route pattern) of the API the host serves.</summary>
    public static IReadOnlyList<(string Method, string Route)> ApiRoutes(IServiceProvider services) =>
    [
        .. services.GetRequiredService<EndpointDataSource>().Endpoints
            .OfType<RouteEndpoint>()
            .Select(endpoint => (Methods: endpoint.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? [], Route: Normalize(endpoint.RoutePattern.RawText)))
            .Where(endpoint => endpoint.Route.StartsWith("/api/", StringComparison.Ordinal))
            .SelectMany(endpoint => endpoint.Methods.Select(method => (method, endpoint.Route)))
            .Distinct()
            .OrderBy(route => route.Route, StringComparer.Ordinal)
            .ThenBy(route => route.method, StringComparer.Ordinal),
    ];

    /// <summary>Routes the host serves that have no entry: each needs one.</summary>
    public static IReadOnlyList<string> Uncatalogued(IServiceProvider services) =>
        [.. ApiRoutes(services).Where(route => Find(route.Method, route.Route) is null).Select(route => $"{route.Method} {route.Route}")];

    /// <summary>Entries whose route the host does not serve (stale entries).</summary>
    public static IReadOnlyList<string> Unserved(IServiceProvider services)
    {
        var served = ApiRoutes(services).ToHashSet();
        return [.. Entries.Where(entry => !served.Contains((entry.Method, entry.Route))).Select(entry => entry.ToString())];
    }

    public static EndpointEntry? Find(string method, string route) =>
        Entries.SingleOrDefault(entry => entry.Method == method && entry.Route == route);

    private static EndpointEntry Get(string route, Func<EndpointContext, string> path) => new("GET", route, context => (path(context), null));

    private static string Normalize(string? pattern) => "/" + (pattern ?? "").Trim('/');

    private static object MaintenanceWindow(EndpointContext context)
    {
        // Planned maintenance is announced at least 72 hours ahead; a distinct hour each time, so windows never overlap.
        var start = new DateTimeOffset(context.Now.Year, context.Now.Month, context.Now.Day, 0, 0, 0, TimeSpan.Zero).AddDays(5)
            .AddMinutes(10 * int.Parse(context.Unique("window").Split('-')[1], CultureInfo.InvariantCulture));
        return new { startsAt = start, endsAt = start.AddMinutes(5), reason = "Storage firmware update" };
    }
}
