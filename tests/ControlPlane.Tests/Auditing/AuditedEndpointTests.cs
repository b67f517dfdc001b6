using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using ControlPlane.Auditing;
using ControlPlane.Tests.Support;

namespace ControlPlane.Tests.Auditing;

/// <summary>
/// Every endpoint of the route table is catalogued, and every mutation and every read of a secret or an export leaves
/// exactly one audit record with its caller as the actor: also when the client disconnects while the server is still
/// working, and for requests refused with 401 or 403.
/// </summary>
public sealed class AuditedEndpointTests(AuditedHost host) : IClassFixture<AuditedHost>
{
    /// <summary>The audited entries in an order in which each meets the prepared tenant in a state that allows it.</summary>
    private static readonly (string Method, string Route)[] s_auditedInOrder =
    [
        ("POST", "/api/v1/tenants"),
        ("POST", "/api/v1/tenants/{tenantId}:changePlan"),
        ("GET", "/api/v1/tenants/{tenantId}/instances/{instanceId}/credentials"),
        ("POST", "/api/v1/tenants/{tenantId}/maintenance-windows"),
        ("DELETE", "/api/v1/tenants/{tenantId}/maintenance-windows/{windowId}"),
        ("POST", "/api/v1/sla/months/{month}:close"),
        ("GET", "/api/v1/finance/reconciliation"),
        ("POST", "/api/v1/finance/tenants/{tenantId}/stripe:sync"),
        ("GET", "/api/v1/tenants/{tenantId}/audit:export"),
        ("GET", "/api/v1/audit:export"),
        ("GET", "/api/v1/compliance/evidence"),
        ("POST", "/api/v1/tenants/{tenantId}/members"),
        ("PATCH", "/api/v1/tenants/{tenantId}/members/{userId}"),
        ("DELETE", "/api/v1/tenants/{tenantId}/members/{userId}"),
        ("POST", "/api/v1/tenants/{tenantId}/api-keys"),
        ("POST", "/api/v1/tenants/{tenantId}/api-keys/{keyId}:rotate"),
        ("DELETE", "/api/v1/tenants/{tenantId}/api-keys/{keyId}"),
        ("PUT", "/api/v1/tenants/{tenantId}/sso"),
        ("DELETE", "/api/v1/tenants/{tenantId}/sso"),
        ("POST", "/api/v1/platform/members"),
        ("DELETE", "/api/v1/platform/members/{userId}"),
        ("POST", "/api/v1/platform/api-keys"),
        ("POST", "/api/v1/platform/api-keys/{keyId}:rotate"),
        ("DELETE", "/api/v1/platform/api-keys/{keyId}"),
        ("PATCH", "/api/v1/tenants/{tenantId}/instances/{instanceId}"),
        ("POST", "/api/v1/tenants/{tenantId}/instances/{instanceId}:stop"),
        ("POST", "/api/v1/tenants/{tenantId}/instances/{instanceId}:start"),
        ("POST", "/api/v1/tenants/{tenantId}/instances/{instanceId}:restart"),
        ("POST", "/api/v1/tenants/{tenantId}/instances/{instanceId}:rotateCredentials"),
        ("POST", "/api/v1/tenants/{tenantId}/operations/{operationId}:cancel"),
        ("DELETE", "/api/v1/tenants/{tenantId}/instances/{instanceId}"),
        ("POST", "/api/v1/tenants/{tenantId}/instances"),
    ];

    [Fact]
    public void Every_api_route_has_a_catalog_entry_and_every_entry_a_route()
    {
        Assert.Empty(EndpointCatalog.Uncatalogued(host.Factory.Services));
        Assert.Empty(EndpointCatalog.Unserved(host.Factory.Services));
    }

    [Fact]
    public void Every_non_get_endpoint_is_marked_mutating_and_every_audited_one_is_exercised()
    {
        Assert.All(EndpointCatalog.Entries.Where(entry => entry.Method != "GET"), entry => Assert.True(entry.Mutates && entry.AuditAction is not null, entry.ToString()));
        Assert.All(EndpointCatalog.Entries.Where(entry => entry.Audited), entry => Assert.NotNull(entry.AuditAction));
        Assert.Equal(
            EndpointCatalog.Entries.Where(entry => entry.Audited).Select(entry => (entry.Method, entry.Route)).Order(),
            s_auditedInOrder.Order());
    }

    [Fact]
    public async Task Every_mutation_and_secret_read_writes_exactly_one_record_with_its_actor_and_outcome()
    {
        var context = await host.PrepareAsync("Audited Corp");
        foreach (var entry in s_auditedInOrder.Select(route => EndpointCatalog.Find(route.Method, route.Route)!))
        {
            var before = await host.RecordsAsync(entry.AuditAction!);
            var (path, body) = entry.Request(context);

            using var response = await host.Admin.SendAsync(new HttpMethod(entry.Method), path, body);
            Assert.True((int)response.StatusCode < 500, $"{entry}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            await host.SettleAsync(context);

            var after = await host.RecordsAsync(entry.AuditAction!);
            Assert.True(after.Count == before.Count + 1, $"{entry}: {after.Count - before.Count} new record(s) of {entry.AuditAction}");
            var record = after[0];
            Assert.Equal(host.AdminActor, record.Actor);
            Assert.NotEqual(AuditLog.Unknown, record.Outcome);
            Assert.NotNull(record.CompletedAt);
            Assert.False(string.IsNullOrEmpty(record.RequestId), entry.ToString());
            Assert.Equal(response.IsSuccessStatusCode, record.Outcome is "accepted" or "succeeded");
        }

        var scale = (await host.RecordsAsync("instance.update"))[0];
        Assert.Equal("small", scale.Before?.GetProperty("size").GetString());
        Assert.Equal("medium", scale.After?.GetProperty("size").GetString());
        var plan = (await host.RecordsAsync("tenant.plan.change"))[0];
        Assert.Equal(("enterprise", "team"), (plan.Before?.GetProperty("plan").GetString(), plan.After?.GetProperty("plan").GetString()));
    }

    [Fact]
    public async Task A_client_that_disconnects_mid_request_still_leaves_the_record_with_its_outcome()
    {
        var context = await host.PrepareAsync("Impatient Corp");
        var database = Path.Combine(host.Factory.DataDirectory.Path, "controlplane.db");
        foreach (var entry in s_auditedInOrder.Select(route => EndpointCatalog.Find(route.Method, route.Route)!))
        {
            var before = await host.RecordsAsync(entry.AuditAction!);
            var (path, body) = entry.Request(context);
            using var request = new HttpRequestMessage(new HttpMethod(entry.Method), path) { Content = body is null ? null : JsonContent.Create(body) };

            // Another writer holds the database, so the server is still working when the client gives up. The client
            // waits long enough for the request to reach its handler (which waits for the database to record the
            // intent) even on a loaded machine; cancelled earlier, nothing would happen and nothing would be recorded.
            var writer = await SqliteWriteLock.TakeAsync(database);
            using var impatience = new CancellationTokenSource(TimeSpan.FromMilliseconds(1500));
            var sending = host.Admin.Http.SendAsync(request, impatience.Token);
            await Task.Delay(TimeSpan.FromMilliseconds(2500));
            writer.Dispose();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending);

            var record = await EventuallyAsync(entry, before.Count);
            Assert.Equal(host.AdminActor, record.Actor);
            await host.SettleAsync(context);
        }

        // The mutations themselves went through, to their end: the tenant's instance was scaled, then deleted.
        Assert.Equal("accepted", (await host.RecordsAsync("instance.update")).First(record => record.TenantId == context.TenantId).Outcome);
        var instance = await host.Admin.GetInstanceAsync(context.TenantId, context.InstanceId);
        Assert.Equal(("Deleted", "medium"), ((string?)instance["state"], (string?)instance["size"]));
    }

    [Fact]
    public async Task Requests_without_a_valid_key_are_recorded_as_401_with_the_trace_id_of_their_answer()
    {
        var before = await host.RecordsAsync("request.unauthenticated");
        using var anonymous = host.Factory.CreateClient();
        anonymous.DefaultRequestHeaders.UserAgent.ParseAdd("audit-tests/1.0");
        anonymous.DefaultRequestHeaders.Authorization = new("Bearer", "cpk_not-a-key");

        using var response = await anonymous.PostAsJsonAsync("/api/v1/tenants", new { name = "Intruder", plan = "team" });

        var problem = await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.Unauthorized, "unauthenticated");
        var after = await host.RecordsAsync("request.unauthenticated");
        Assert.Equal(before.Count + 1, after.Count);
        var record = after[0];
        Assert.Equal(("anonymous", "rejected:unauthenticated", "POST /api/v1/tenants"), (record.Actor, record.Outcome, record.Target));
        Assert.Equal((string?)problem["traceId"], record.RequestId);
        Assert.Equal("audit-tests/1.0", record.UserAgent);
        Assert.DoesNotContain("cpk_not-a-key", System.Text.Json.JsonSerializer.Serialize(record), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Requests_refused_for_their_role_are_recorded_as_403_with_the_key_as_actor()
    {
        var tenantId = (string)(await host.Admin.CreateTenantAsync("Curious Corp"))["id"]!;
        var (member, actor) = await host.KeyAsync("curious-member", "member", tenantId);
        var before = await host.RecordsAsync("request.forbidden");

        using var createTenant = await member.SendAsync(HttpMethod.Post, "/api/v1/tenants", new { name = "Escalation", plan = "team" });
        using var platformAudit = await member.SendAsync(HttpMethod.Get, "/api/v1/audit");

        await ControlPlaneApi.ExpectProblemAsync(createTenant, HttpStatusCode.Forbidden, "forbidden");
        await ControlPlaneApi.ExpectProblemAsync(platformAudit, HttpStatusCode.Forbidden, "forbidden");
        var after = await host.RecordsAsync("request.forbidden");
        Assert.Equal(before.Count + 2, after.Count);
        Assert.All(after.Take(2), record => Assert.Equal((actor, "rejected:forbidden"), (record.Actor, record.Outcome)));
        Assert.Equal(["GET /api/v1/audit", "POST /api/v1/tenants"], after.Take(2).Select(record => record.Target));
    }

    [Fact]
    public async Task A_refusal_an_endpoint_records_itself_is_not_recorded_twice()
    {
        var tenantId = (string)(await host.Admin.CreateTenantAsync("Small Corp", plan: "developer"))["id"]!;
        var operations = await Task.WhenAll(Enumerable.Range(0, 3).Select(i => host.Admin.CreateInstanceAsync(tenantId, $"quota-{i}")));
        var forbiddenBefore = await host.RecordsAsync("request.forbidden");

        using var overQuota = await host.Admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/instances", new { name = "quota-3", product = "garnet", size = "small" });

        await ControlPlaneApi.ExpectProblemAsync(overQuota, HttpStatusCode.Forbidden, "quota-exceeded");
        Assert.Single(await host.RecordsAsync("instance.create"), record => record.TenantId == tenantId && record.Outcome == "rejected:quota-exceeded");
        Assert.Equal(forbiddenBefore.Count, (await host.RecordsAsync("request.forbidden")).Count);
        foreach (var operation in operations)
        {
            await host.Admin.WaitForOperationAsync(tenantId, (string)operation["id"]!);
        }
    }

    private async Task<AuditRecord> EventuallyAsync(EndpointEntry entry, int countBefore)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var records = await host.RecordsAsync(entry.AuditAction!);
            if (records.Count > countBefore && records[0].Outcome != AuditLog.Unknown)
            {
                Assert.Equal(countBefore + 1, records.Count);
                return records[0];
            }

            Assert.True(DateTime.UtcNow < deadline, $"{entry}: no completed record after the client disconnected ({records.Count - countBefore} new).)");
            await Task.Delay(100);
        }
    }
}
