using System.Net;
using System.Text.Json.Nodes;
using ControlPlane.Security;
using ControlPlane.Tests.Auditing;
using ControlPlane.Tests.Support;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace ControlPlane.Tests.Identity;

/// <summary>
/// Every endpoint of the route table (through <see cref="EndpointCatalog"/>, so a new endpoint without an entry fails),
/// called with keys of two tenants at every tenant role: another tenant's ids answer 404, a role without the endpoint's
/// permission 403, and in neither case does anything change; a role with it succeeds.
/// </summary>
public sealed class IsolationMatrixTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly AuditedHost _host = new();

    public async Task InitializeAsync()
    {
        _host.Factory.Settings["RateLimits:Enabled"] = "false";
        await _host.InitializeAsync();
    }

    public Task DisposeAsync() => _host.DisposeAsync();

    [Fact]
    public async Task Another_tenants_keys_get_404_roles_without_the_permission_get_403_nothing_changes_and_roles_with_it_succeed()
    {
        Assert.Empty(EndpointCatalog.Uncatalogued(_host.Factory.Services));
        var ours = await _host.PrepareAsync("Ours Ltd");
        var theirsId = (string)(await _host.Admin.CreateTenantAsync("Theirs Ltd"))["id"]!;
        var permissions = RequiredPermissions();
        var ourKeys = new Dictionary<string, ControlPlaneApi>();
        var theirKeys = new Dictionary<string, ControlPlaneApi>();
        foreach (var role in Roles.TenantRoleNames)
        {
            ourKeys[role] = (await _host.KeyAsync($"ours {role}", role, ours.TenantId)).Api;
            theirKeys[role] = (await _host.KeyAsync($"theirs {role}", role, theirsId)).Api;
        }

        var before = await FingerprintAsync(ours);
        var checks = 0;
        foreach (var entry in EndpointCatalog.Entries)
        {
            var permission = permissions[(entry.Method, entry.Route)];
            var (path, body) = entry.Request(ours);
            foreach (var role in Roles.TenantRoleNames)
            {
                // Another tenant's keys, at every role: the tenant-scoped endpoint does not exist for them.
                using var foreign = await theirKeys[role].SendAsync(new HttpMethod(entry.Method), path, body);
                var expectedForeign = entry.Route.Contains("{tenantId}", StringComparison.Ordinal) ? HttpStatusCode.NotFound
                    : permission is null || Roles.Find(role)!.Allows(permission) ? (HttpStatusCode?)null : HttpStatusCode.Forbidden;
                if (expectedForeign is { } foreignStatus)
                {
                    await ControlPlaneApi.ExpectProblemAsync(foreign, foreignStatus);
                    checks++;
                }

                // Our keys at a role without the permission: refused.
                if (permission is not null && !Roles.Find(role)!.Allows(permission))
                {
                    using var refused = await ourKeys[role].SendAsync(new HttpMethod(entry.Method), path, body);
                    await ControlPlaneApi.ExpectProblemAsync(refused, HttpStatusCode.Forbidden);
                    checks++;
                }
            }
        }

        // Nothing any refused request touched has changed.
        Assert.Equal(before, await FingerprintAsync(ours));

        // Every role with the permission is served: each read by every such role; each mutation once, by its least
        // privileged such role, in an order in which the prepared tenant allows it.
        var served = 0;
        foreach (var entry in EndpointCatalog.Entries.Where(entry => !entry.Mutates))
        {
            var permission = permissions[(entry.Method, entry.Route)];
            foreach (var role in Roles.TenantRoleNames.Where(role => permission is null || Roles.Find(role)!.Allows(permission)))
            {
                var (path, _) = entry.Request(ours);
                using var response = await ourKeys[role].Http.GetAsync(path);
                Assert.True(response.IsSuccessStatusCode, $"{entry} as {role}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                served++;
            }
        }

        foreach (var entry in EndpointCatalog.Entries.Where(entry => entry.Mutates && entry.Route.Contains("{tenantId}", StringComparison.Ordinal)).OrderBy(MutationOrder))
        {
            var permission = permissions[(entry.Method, entry.Route)]!;
            var role = Roles.TenantRoleNames.Reverse().FirstOrDefault(role => Roles.Find(role)!.Allows(permission));
            if (role is null)
            {
                continue;
            }

            var (path, body) = entry.Request(ours);
            using var response = await ourKeys[role].SendAsync(new HttpMethod(entry.Method), path, body);
            // Allowed means the request reached its rule: done, or refused by the rule itself (cancelling an operation
            // that has already finished: 409; an SSO issuer that does not answer: 422), never 401, 403 or 404.
            Assert.True(
                response.IsSuccessStatusCode || response.StatusCode is HttpStatusCode.Conflict or HttpStatusCode.UnprocessableEntity,
                $"{entry} as {role}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            await _host.SettleAsync(ours);
            served++;
        }

        output.WriteLine($"{checks} refusals and {served} successes checked over {EndpointCatalog.Entries.Count} endpoints and {Roles.TenantRoleNames.Count} roles");
        Assert.True(checks > EndpointCatalog.Entries.Count, $"only {checks} refusals were checked");
    }

    /// <summary>The permission each endpoint names (null: open to any authenticated caller).</summary>
    private Dictionary<(string Method, string Route), Permission?> RequiredPermissions() =>
        _host.Factory.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(endpoint => endpoint.RoutePattern.RawText?.StartsWith("/api/", StringComparison.Ordinal) == true)
            .SelectMany(endpoint => (endpoint.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? []).Select(method =>
                (Key: (method, "/" + endpoint.RoutePattern.RawText!.Trim('/')), Permission: endpoint.Metadata.GetMetadata<RequiredPermission>()?.Permission)))
            .ToDictionary(pair => pair.Key, pair => pair.Permission);

    /// <summary>Members and keys before the instance goes away; the instance's own operations last, its delete very last.</summary>
    private static int MutationOrder(EndpointEntry entry) => entry.Route switch
    {
        _ when entry.Method == "DELETE" && entry.Route.EndsWith("{instanceId}", StringComparison.Ordinal) => 3,
        _ when entry.Route.Contains("{instanceId}", StringComparison.Ordinal) || entry.Route.Contains("{operationId}", StringComparison.Ordinal) => 2,
        _ when entry.Route.EndsWith(":rotate", StringComparison.Ordinal) => 0,
        _ => 1,
    };

    /// <summary>What a refused request could have changed in the tenant, as one comparable string.</summary>
    private async Task<string> FingerprintAsync(EndpointContext context)
    {
        var admin = _host.Admin;
        var tenant = await admin.GetAsync($"/api/v1/tenants/{context.TenantId}");
        var instances = await admin.ListAllAsync($"/api/v1/tenants/{context.TenantId}/instances");
        var members = await admin.ListAllAsync($"/api/v1/tenants/{context.TenantId}/members");
        var keys = await admin.ListAllAsync($"/api/v1/tenants/{context.TenantId}/api-keys?includeInactive=true");
        var windows = await admin.GetAsync($"/api/v1/tenants/{context.TenantId}/maintenance-windows");
        var tenants = await admin.ListAllAsync("/api/v1/tenants");
        return string.Join(
            "\n",
            (string?)tenant["plan"],
            string.Join(",", instances.Select(i => $"{i["id"]}:{i["state"]}:{i["size"]}:{i["activeOperationId"]}")),
            string.Join(",", members.Select(m => $"{m["email"]}:{m["role"]}")),
            string.Join(",", keys.Select(k => $"{k["id"]}:{k["status"]}:{k["expiresAt"]}")),
            windows.ToJsonString(),
            tenants.Count.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }
}
