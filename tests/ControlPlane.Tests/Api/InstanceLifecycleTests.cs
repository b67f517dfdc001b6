using System.Net;
using System.Text.Json.Nodes;
using ControlPlane.Tests.Support;
using StackExchange.Redis;

namespace ControlPlane.Tests.Api;

/// <summary>The instance lifecycle over HTTP, against real Garnet processes started by the Local backend.</summary>
public sealed class InstanceLifecycleTests : IAsyncLifetime
{
    private readonly ControlPlaneFactory _factory = new();
    private ControlPlaneApi _api = null!;
    private string _tenantId = "";

    public async Task InitializeAsync()
    {
        _api = _factory.CreateAdminApi();
        _tenantId = (string)(await _api.CreateTenantAsync())["id"]!;
    }

    public async Task DisposeAsync() => await _factory.DisposeAsync();

    [Fact]
    public async Task Created_instance_serves_redis_clients_with_its_credentials_and_refuses_a_wrong_password()
    {
        var instance = await _api.CreateRunningInstanceAsync(_tenantId, "orders-cache");
        var credentials = await _api.GetCredentialsAsync(_tenantId, (string)instance["id"]!);

        await using (var connection = await GarnetClient.ConnectAsync(credentials))
        {
            var db = connection.GetDatabase();
            Assert.True(await db.StringSetAsync("order:1", "shipped"));
            Assert.Equal("shipped", (string?)await db.StringGetAsync("order:1"));
        }

        await Assert.ThrowsAnyAsync<RedisException>(() => GarnetClient.ConnectAsync(credentials, password: "not-the-password"));

        // Credentials are never kept by a browser's or a proxy's cache.
        using (var raw = await _api.SendAsync(HttpMethod.Get, $"/api/v1/tenants/{_tenantId}/instances/{instance["id"]}/credentials"))
        {
            Assert.True(raw.Headers.CacheControl?.NoStore, $"Cache-Control: {raw.Headers.CacheControl}");
        }

        Assert.Equal("Running", (string?)instance["state"]);
        // It answered its health check: healthy, or degraded when a loaded machine made that answer slower than 250 ms.
        Assert.Contains((string?)instance["health"], new[] { "healthy", "degraded" });
        Assert.Equal("garnet", (string?)instance["product"]);
        Assert.Equal("2.2.8", (string?)instance["version"]);
        Assert.Equal("local", (string?)instance["backend"]);
        Assert.Equal((int)credentials["port"]!, (int)instance["endpoint"]!["port"]!);
        Assert.Null(instance["password"]);
    }

    [Fact]
    public async Task Operation_reports_its_steps_requester_and_outcome()
    {
        var accepted = await _api.CreateInstanceAsync(_tenantId, "stepper");

        var operation = await _api.WaitForOperationAsync(_tenantId, (string)accepted["id"]!);

        Assert.Equal("create", (string?)operation["type"]);
        Assert.Equal("succeeded", (string?)operation["status"]);
        Assert.StartsWith("apikey:", (string?)operation["requestedBy"], StringComparison.Ordinal);
        var steps = operation["steps"]!.AsArray();
        Assert.True(steps.Count >= 2, operation.ToJsonString());
        Assert.All(steps, step => Assert.Equal("succeeded", (string?)step!["status"]));
        Assert.Equal(steps.Count, (int)operation["totalSteps"]!);
        Assert.NotNull(operation["completedAt"]);
    }

    [Fact]
    public async Task Second_mutation_during_an_operation_is_409_naming_the_running_operation()
    {
        var accepted = await _api.CreateInstanceAsync(_tenantId, "busy");
        var instanceId = (string)accepted["instanceId"]!;

        using var stop = await _api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{_tenantId}/instances/{instanceId}:stop");
        using var delete = await _api.SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{_tenantId}/instances/{instanceId}");

        var problem = await ControlPlaneApi.ExpectProblemAsync(stop, HttpStatusCode.Conflict, "operation-in-progress");
        Assert.Equal((string?)accepted["id"], (string?)problem["operationId"]);
        Assert.Contains((string)accepted["id"]!, (string?)problem["detail"], StringComparison.Ordinal);
        await ControlPlaneApi.ExpectProblemAsync(delete, HttpStatusCode.Conflict, "operation-in-progress");
        await _api.WaitForOperationAsync(_tenantId, (string)accepted["id"]!);
    }

    [Fact]
    public async Task Repeated_idempotency_key_returns_the_first_result_and_creates_nothing_new()
    {
        var key = Guid.NewGuid().ToString();

        var first = await _api.CreateInstanceAsync(_tenantId, "once", idempotencyKey: key);
        var second = await _api.CreateInstanceAsync(_tenantId, "once", idempotencyKey: key);
        using var differentBody = await _api.SendAsync(
            HttpMethod.Post, $"/api/v1/tenants/{_tenantId}/instances", new { name = "twice", product = "garnet", size = "small" }, key);

        Assert.Equal((string?)first["id"], (string?)second["id"]);
        Assert.Equal((string?)first["instanceId"], (string?)second["instanceId"]);
        await ControlPlaneApi.ExpectProblemAsync(differentBody, HttpStatusCode.UnprocessableEntity, "idempotency-key-reused");
        await _api.WaitForOperationAsync(_tenantId, (string)first["id"]!);
        var instances = (await _api.GetAsync($"/api/v1/tenants/{_tenantId}/instances"))["items"]!.AsArray();
        Assert.Single(instances);
        Assert.Single(HostedProcesses.Under(Path.Combine(_factory.DataDirectory.Path, "instances")));
    }

    [Fact]
    public async Task Idempotency_key_on_a_mutation_returns_the_same_operation()
    {
        var instance = await _api.CreateRunningInstanceAsync(_tenantId, "stop-once");
        var path = $"/api/v1/tenants/{_tenantId}/instances/{instance["id"]}:stop";
        var key = Guid.NewGuid().ToString();

        using var first = await _api.SendAsync(HttpMethod.Post, path, idempotencyKey: key);
        using var second = await _api.SendAsync(HttpMethod.Post, path, idempotencyKey: key);

        var firstOperation = await ControlPlaneApi.ExpectAsync(first, HttpStatusCode.Accepted);
        var secondOperation = await ControlPlaneApi.ExpectAsync(second, HttpStatusCode.Accepted);
        Assert.Equal((string?)firstOperation["id"], (string?)secondOperation["id"]);
    }

    [Fact]
    public async Task Twenty_parallel_creates_all_reach_running_on_distinct_ports()
    {
        var operations = await Task.WhenAll(Enumerable.Range(1, 20).Select(i => _api.CreateInstanceAsync(_tenantId, $"cache-{i}")));

        var finished = await Task.WhenAll(operations.Select(op => _api.WaitForOperationAsync(_tenantId, (string)op["id"]!, TimeSpan.FromMinutes(3))));

        Assert.All(finished, op => Assert.True((string?)op["status"] == "succeeded", op.ToJsonString()));
        var instances = (await _api.GetAsync($"/api/v1/tenants/{_tenantId}/instances"))["items"]!.AsArray();
        Assert.Equal(20, instances.Count);
        Assert.All(instances, instance => Assert.Equal("Running", (string?)instance!["state"]));
        Assert.Equal(20, instances.Select(instance => (int)instance!["endpoint"]!["port"]!).Distinct().Count());
        Assert.Equal(20, HostedProcesses.Under(Path.Combine(_factory.DataDirectory.Path, "instances")).Count);
    }

    [Fact]
    public async Task Plan_quota_is_enforced_with_a_clear_error()
    {
        var tenant = await _api.CreateTenantAsync("Small Shop", "developer");
        var tenantId = (string)tenant["id"]!;
        Assert.Equal(3, (int)tenant["maxInstances"]!);
        foreach (var i in Enumerable.Range(1, 3))
        {
            await _api.CreateInstanceAsync(tenantId, $"shop-{i}");
        }

        using var fourth = await _api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/instances", new { name = "shop-4", product = "garnet" });

        var problem = await ControlPlaneApi.ExpectProblemAsync(fourth, HttpStatusCode.Forbidden, "quota-exceeded");
        Assert.Contains("developer", (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Equal("3", (string?)problem["limit"]);
    }

    [Fact]
    public async Task Instance_names_are_unique_within_a_tenant()
    {
        await _api.CreateInstanceAsync(_tenantId, "same-name");

        using var duplicate = await _api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{_tenantId}/instances", new { name = "same-name", product = "garnet" });

        await ControlPlaneApi.ExpectProblemAsync(duplicate, HttpStatusCode.Conflict, "name-taken");
    }

    [Fact]
    public async Task Instance_of_another_tenant_is_404_everywhere()
    {
        var instance = await _api.CreateRunningInstanceAsync(_tenantId, "private");
        var otherTenant = (string)(await _api.CreateTenantAsync("Someone Else"))["id"]!;
        var path = $"/api/v1/tenants/{otherTenant}/instances/{instance["id"]}";

        using var get = await _api.Http.GetAsync(path);
        using var credentials = await _api.Http.GetAsync(path + "/credentials");
        using var delete = await _api.SendAsync(HttpMethod.Delete, path);
        using var operation = await _api.Http.GetAsync($"/api/v1/tenants/{otherTenant}/operations/{instance["lastOperationId"]}");

        await ControlPlaneApi.ExpectProblemAsync(get, HttpStatusCode.NotFound, "not-found");
        await ControlPlaneApi.ExpectProblemAsync(credentials, HttpStatusCode.NotFound, "not-found");
        await ControlPlaneApi.ExpectProblemAsync(delete, HttpStatusCode.NotFound, "not-found");
        await ControlPlaneApi.ExpectProblemAsync(operation, HttpStatusCode.NotFound, "not-found");
        Assert.Empty((await _api.GetAsync($"/api/v1/tenants/{otherTenant}/instances"))["items"]!.AsArray());
    }

    [Fact]
    public async Task Scale_restarts_with_the_new_size_and_keeps_the_data()
    {
        var instance = await _api.CreateRunningInstanceAsync(_tenantId, "growing");
        var instanceId = (string)instance["id"]!;
        var credentials = await _api.GetCredentialsAsync(_tenantId, instanceId);
        await using (var connection = await GarnetClient.ConnectAsync(credentials))
        {
            await connection.GetDatabase().StringSetAsync("kept", "yes");
        }

        var operation = await PatchAsync(instanceId, new { size = "medium" });
        var finished = await _api.WaitForOperationAsync(_tenantId, (string)operation["id"]!);

        Assert.Equal("scale", (string?)finished["type"]);
        Assert.Equal("succeeded", (string?)finished["status"]);
        var scaled = await _api.GetInstanceAsync(_tenantId, instanceId);
        Assert.Equal("medium", (string?)scaled["size"]);
        Assert.Equal("Running", (string?)scaled["state"]);
        Assert.Equal("yes", await GarnetClient.GetWhenServingAsync(credentials, "kept", TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Patch_that_changes_nothing_or_asks_nothing_is_refused()
    {
        var instance = await _api.CreateRunningInstanceAsync(_tenantId, "steady");
        var path = $"/api/v1/tenants/{_tenantId}/instances/{instance["id"]}";

        using var same = await _api.SendAsync(HttpMethod.Patch, path, new { size = "small" });
        using var empty = await _api.SendAsync(HttpMethod.Patch, path, new { });
        using var unknownSize = await _api.SendAsync(HttpMethod.Patch, path, new { size = "gigantic" });

        await ControlPlaneApi.ExpectProblemAsync(same, HttpStatusCode.Conflict, "no-change");
        await ControlPlaneApi.ExpectProblemAsync(empty, HttpStatusCode.BadRequest, "validation-failed");
        var problem = await ControlPlaneApi.ExpectProblemAsync(unknownSize, HttpStatusCode.BadRequest, "validation-failed");
        Assert.NotNull(problem["errors"]!["size"]);
    }

    [Fact]
    public async Task Stop_and_start_keep_the_data_and_the_endpoint()
    {
        var instance = await _api.CreateRunningInstanceAsync(_tenantId, "sleeper");
        var instanceId = (string)instance["id"]!;
        var credentials = await _api.GetCredentialsAsync(_tenantId, instanceId);
        await using (var connection = await GarnetClient.ConnectAsync(credentials))
        {
            await connection.GetDatabase().StringSetAsync("dream", "sheep");
        }

        var stop = await MutateAsync(instanceId, ":stop");
        Assert.Equal("succeeded", (string?)(await _api.WaitForOperationAsync(_tenantId, (string)stop["id"]!))["status"]);
        var stopped = await _api.GetInstanceAsync(_tenantId, instanceId);
        Assert.Equal("Stopped", (string?)stopped["state"]);
        Assert.Empty(HostedProcesses.Under(_factory.InstanceDirectory(instanceId)));
        await Assert.ThrowsAnyAsync<RedisException>(() => GarnetClient.ConnectAsync(credentials));
        using (var stopAgain = await _api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{_tenantId}/instances/{instanceId}:stop"))
        {
            await ControlPlaneApi.ExpectProblemAsync(stopAgain, HttpStatusCode.Conflict, "invalid-instance-state");
        }

        var start = await MutateAsync(instanceId, ":start");
        Assert.Equal("succeeded", (string?)(await _api.WaitForOperationAsync(_tenantId, (string)start["id"]!))["status"]);
        var started = await _api.GetInstanceAsync(_tenantId, instanceId);
        Assert.Equal("Running", (string?)started["state"]);
        Assert.Equal((int)instance["endpoint"]!["port"]!, (int)started["endpoint"]!["port"]!);
        Assert.Equal("sheep", await GarnetClient.GetWhenServingAsync(credentials, "dream", TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Delete_stops_the_process_frees_the_port_and_removes_the_data()
    {
        var instance = await _api.CreateRunningInstanceAsync(_tenantId, "doomed");
        var instanceId = (string)instance["id"]!;
        var port = (int)instance["endpoint"]!["port"]!;
        var directory = _factory.InstanceDirectory(instanceId);
        Assert.Single(HostedProcesses.Under(directory));

        var delete = await _api.SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{_tenantId}/instances/{instanceId}");
        var operation = await ControlPlaneApi.ExpectAsync(delete, HttpStatusCode.Accepted);
        Assert.False((bool)operation["cancellable"]!);
        var finished = await _api.WaitForOperationAsync(_tenantId, (string)operation["id"]!);

        Assert.Equal("succeeded", (string?)finished["status"]);
        Assert.Equal("Deleted", (string?)(await _api.GetInstanceAsync(_tenantId, instanceId))["state"]);
        Assert.Empty(HostedProcesses.Under(directory));
        Assert.False(Directory.Exists(directory));
        Assert.True(Ports.IsBindable(port));
        Assert.Empty((await _api.GetAsync($"/api/v1/tenants/{_tenantId}/instances"))["items"]!.AsArray());
        Assert.Single((await _api.GetAsync($"/api/v1/tenants/{_tenantId}/instances?includeDeleted=true"))["items"]!.AsArray());
        using var credentials = await _api.Http.GetAsync($"/api/v1/tenants/{_tenantId}/instances/{instanceId}/credentials");
        await ControlPlaneApi.ExpectProblemAsync(credentials, HttpStatusCode.Conflict, "invalid-instance-state");
    }

    [Fact]
    public async Task Cancelling_a_create_leaves_nothing_behind()
    {
        var accepted = await _api.CreateInstanceAsync(_tenantId, "never-mind");
        var instanceId = (string)accepted["instanceId"]!;

        using var cancel = await _api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{_tenantId}/operations/{accepted["id"]}:cancel");
        var cancelling = await ControlPlaneApi.ExpectAsync(cancel, HttpStatusCode.Accepted);
        var finished = await _api.WaitForOperationAsync(_tenantId, (string)accepted["id"]!);

        Assert.Equal("cancelling", (string?)cancelling["status"]);
        Assert.Equal("cancelled", (string?)finished["status"]);
        var instance = await _api.GetInstanceAsync(_tenantId, instanceId);
        Assert.Equal("Deleted", (string?)instance["state"]);
        Assert.Empty(HostedProcesses.Under(_factory.InstanceDirectory(instanceId)));
        Assert.False(Directory.Exists(_factory.InstanceDirectory(instanceId)));
        Assert.Contains(finished["log"]!.AsArray(), entry => ((string)entry!["message"]!).Contains("Cancellation requested", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Finished_operation_cannot_be_cancelled()
    {
        var instance = await _api.CreateRunningInstanceAsync(_tenantId, "done-deal");

        using var cancel = await _api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{_tenantId}/operations/{instance["lastOperationId"]}:cancel");

        await ControlPlaneApi.ExpectProblemAsync(cancel, HttpStatusCode.Conflict, "operation-not-cancellable");
    }

    [Fact]
    public async Task Credentials_reads_and_mutations_are_attributable_and_secrets_never_reach_a_log()
    {
        var instance = await _api.CreateRunningInstanceAsync(_tenantId, "secretive");
        var credentials = await _api.GetCredentialsAsync(_tenantId, (string)instance["id"]!);
        var password = (string)credentials["password"]!;
        var adminKey = File.ReadAllText(Path.Combine(_factory.DataDirectory.Path, "admin-api-key")).Trim();

        var audit = await ReadAuditAsync();

        Assert.Contains(audit, entry => entry.Action == "instance.create" && entry.Actor.StartsWith("apikey:", StringComparison.Ordinal));
        Assert.Contains(audit, entry => entry.Action == "instance.credentials.read" && entry.Target == (string)instance["id"]!);
        Assert.DoesNotContain(audit, entry => entry.Details?.Contains(password, StringComparison.Ordinal) == true);
        Assert.NotEmpty(_factory.Logs.Lines);
        Assert.DoesNotContain(_factory.Logs.Lines, line => line.Contains(password, StringComparison.Ordinal));
        Assert.DoesNotContain(_factory.Logs.Lines, line => line.Contains(adminKey, StringComparison.Ordinal));
        Assert.DoesNotContain(
            Directory.EnumerateFiles(_factory.InstanceDirectory((string)instance["id"]!), "*.log", SearchOption.AllDirectories),
            file => File.ReadAllText(file).Contains(password, StringComparison.Ordinal));
    }

    private async Task<List<(string Actor, string Action, string? Target, string? Details)>> ReadAuditAsync()
    {
        var audit = _factory.Services.GetService(typeof(ControlPlane.Auditing.AuditLog)) as ControlPlane.Auditing.AuditLog;
        var records = await audit!.ReadAsync(_tenantId, 100);
        return [.. records.Select(record => (record.Actor, record.Action, record.Target, record.Details))];
    }

    private async Task<JsonNode> PatchAsync(string instanceId, object body)
    {
        using var response = await _api.SendAsync(HttpMethod.Patch, $"/api/v1/tenants/{_tenantId}/instances/{instanceId}", body);
        return await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.Accepted);
    }

    private async Task<JsonNode> MutateAsync(string instanceId, string verb)
    {
        using var response = await _api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{_tenantId}/instances/{instanceId}{verb}");
        return await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.Accepted);
    }
}
