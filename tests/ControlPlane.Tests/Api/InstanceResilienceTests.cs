using System.Net;
using System.Text.Json.Nodes;
using ControlPlane.Tests.Support;

namespace ControlPlane.Tests.Api;

/// <summary>
/// A real instance restarted on request, one that hangs (SIGSTOP) restarted by the liveness check, and one whose process
/// keeps dying after it answered, taken to Failed as a crash loop with the evidence kept.
/// </summary>
public sealed class InstanceResilienceTests
{
    [Fact]
    public async Task Restart_starts_a_new_process_on_the_same_port_with_the_data_kept_refuses_a_second_mutation_meanwhile_and_is_idempotent()
    {
        using var factory = new ControlPlaneFactory();
        var (api, tenantId) = await StartAsync(factory);
        var (instanceId, credentials) = await CreateHoldingAsync(api, tenantId, "restartable", "across-restart");

        var processBefore = Assert.Single(HostedProcesses.Under(factory.InstanceDirectory(instanceId)));
        var path = $"/api/v1/tenants/{tenantId}/instances/{instanceId}:restart";
        var key = Guid.NewGuid().ToString();

        using var first = await api.SendAsync(HttpMethod.Post, path, idempotencyKey: key);
        using var stopMeanwhile = await api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/instances/{instanceId}:stop");
        using var replay = await api.SendAsync(HttpMethod.Post, path, idempotencyKey: key);

        var operation = await ControlPlaneApi.ExpectAsync(first, HttpStatusCode.Accepted);
        Assert.Equal("restart", (string?)operation["type"]);
        await ControlPlaneApi.ExpectProblemAsync(stopMeanwhile, HttpStatusCode.Conflict, "operation-in-progress");
        Assert.Equal((string?)operation["id"], (string?)(await ControlPlaneApi.ExpectAsync(replay, HttpStatusCode.Accepted))["id"]);
        var finished = await api.WaitForOperationAsync(tenantId, (string)operation["id"]!);
        Assert.Equal("succeeded", (string?)finished["status"]);

        var instance = await api.GetInstanceAsync(tenantId, instanceId);
        Assert.Equal("Running", (string?)instance["state"]);
        Assert.Equal((int)credentials["port"]!, (int)instance["endpoint"]!["port"]!);
        var processAfter = Assert.Single(HostedProcesses.Under(factory.InstanceDirectory(instanceId)));
        Assert.NotEqual(processBefore, processAfter);
        Assert.Equal("across-restart", await GarnetClient.GetWhenServingAsync(credentials, "kept", TimeSpan.FromSeconds(20)));
        var operations = (await api.GetAsync($"/api/v1/tenants/{tenantId}/instances/{instanceId}/operations"))["items"]!.AsArray();
        Assert.Single(operations, o => (string?)o!["type"] == "restart");

        await api.WaitForOperationAsync(tenantId, (string)(await StopAsync(api, tenantId, instanceId))["id"]!);
        using var restartStopped = await api.SendAsync(HttpMethod.Post, path);
        await ControlPlaneApi.ExpectProblemAsync(restartStopped, HttpStatusCode.Conflict, "invalid-instance-state");
    }

    [Fact]
    public async Task A_process_that_stops_answering_is_restarted_after_the_liveness_timeout_with_its_data_and_port()
    {
        using var factory = new ControlPlaneFactory();
        factory.Settings["Reconcile:LivenessTimeout"] = "00:00:03";
        factory.Settings["Provisioner:Local:StopTimeout"] = "00:00:02";
        var (api, tenantId) = await StartAsync(factory);
        var (instanceId, credentials) = await CreateHoldingAsync(api, tenantId, "hangs", "across-hang");

        var hung = Assert.Single(HostedProcesses.Under(factory.InstanceDirectory(instanceId)));
        Signal(hung, "STOP");

        var events = await WaitForEventAsync(api, tenantId, instanceId, "liveness-restart", TimeSpan.FromSeconds(60));
        var instance = await api.WaitForInstanceAsync(tenantId, instanceId, i => (string?)i["health"] == "healthy", TimeSpan.FromSeconds(60));

        Assert.Contains("has not answered an authenticated PING for 3 s", (string?)events["message"], StringComparison.Ordinal);
        Assert.Equal("Running", (string?)instance["state"]);
        Assert.Equal((int)credentials["port"]!, (int)instance["endpoint"]!["port"]!);
        var replacement = Assert.Single(HostedProcesses.Under(factory.InstanceDirectory(instanceId)));
        Assert.NotEqual(hung, replacement);
        Assert.Equal("across-hang", await GarnetClient.GetWhenServingAsync(credentials, "kept", TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public async Task A_process_that_keeps_dying_after_it_answered_is_a_crash_loop_the_instance_fails_with_the_first_crash_and_the_logs_kept()
    {
        using var factory = new ControlPlaneFactory();
        factory.Settings["Reconcile:CrashLoopRestarts"] = "3";
        factory.Settings["Reconcile:MaxRepairBackoff"] = "00:00:02";
        factory.Settings["Provisioner:Local:KeptLogs"] = "3";
        var (api, tenantId) = await StartAsync(factory);
        var instanceId = (string)(await api.CreateRunningInstanceAsync(tenantId, "crashy"))["id"]!;
        var credentials = await api.GetCredentialsAsync(tenantId, instanceId);
        var root = factory.InstanceDirectory(instanceId);

        // Each start answers an authenticated PING, then dies (as out of memory or on a corrupt file): killed here, every
        // time, once it has answered, however long the machine makes it take to start.
        var crashes = 0;
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while ((string?)(await api.GetInstanceAsync(tenantId, instanceId))["state"] != "Failed")
        {
            Assert.True(DateTime.UtcNow < deadline, $"Not Failed after {crashes} crashes: {(await api.GetInstanceAsync(tenantId, instanceId)).ToJsonString()}");
            if (HostedProcesses.Under(root) is [var process] && await AnswersAsync(credentials))
            {
                Signal(process, "KILL");
                crashes++;
            }

            await Task.Delay(100);
        }

        var failed = await api.GetInstanceAsync(tenantId, instanceId);
        var crashLoop = await WaitForEventAsync(api, tenantId, instanceId, "crash-loop", TimeSpan.FromSeconds(5));
        Assert.True(crashes >= 3, $"{crashes} crashes");
        Assert.Equal("crash-loop", (string?)failed["failureCode"]);
        Assert.Contains("restarted 3 times", (string?)failed["failureReason"], StringComparison.Ordinal);
        Assert.Contains("First crash:", (string?)crashLoop["message"], StringComparison.Ordinal);
        Assert.Contains("Last lines of its log", (string?)crashLoop["message"], StringComparison.Ordinal);
        var events = (await api.GetAsync($"/api/v1/tenants/{tenantId}/instances/{instanceId}/events?pageSize=100"))["items"]!.AsArray();
        Assert.True(events.Count(e => (string?)e!["kind"] == "repaired") >= 3, events.ToJsonString());
        Assert.True(File.Exists(Path.Combine(root, "process.log.1")) && File.Exists(Path.Combine(root, "process.log.3")), string.Join(", ", Directory.GetFiles(root)));
        Assert.False(File.Exists(Path.Combine(root, "process.log.4")));
        await WaitUntilAsync(() => HostedProcesses.Under(root).Count == 0, "the crash-looping instance to be left stopped");
        Assert.True(Directory.Exists(Path.Combine(root, "data")));
    }

    private static async Task<bool> AnswersAsync(JsonNode credentials)
    {
        try
        {
            await using var connection = await GarnetClient.ConnectAsync(credentials);
            await connection.GetDatabase().PingAsync();
            return true;
        }
        catch (StackExchange.Redis.RedisException)
        {
            return false;
        }
    }

    private static async Task<(ControlPlaneApi Api, string TenantId)> StartAsync(ControlPlaneFactory factory)
    {
        var api = factory.CreateAdminApi();
        return (api, (string)(await api.CreateTenantAsync())["id"]!);
    }

    /// <summary>A running instance whose key <c>kept</c> holds <paramref name="value"/>.</summary>
    private static async Task<(string InstanceId, JsonNode Credentials)> CreateHoldingAsync(ControlPlaneApi api, string tenantId, string name, string value)
    {
        var instanceId = (string)(await api.CreateRunningInstanceAsync(tenantId, name))["id"]!;
        var credentials = await api.GetCredentialsAsync(tenantId, instanceId);
        await using var connection = await GarnetClient.ConnectAsync(credentials);
        Assert.True(await connection.GetDatabase().StringSetAsync("kept", value));
        return (instanceId, credentials);
    }

    private static async Task<JsonNode> StopAsync(ControlPlaneApi api, string tenantId, string instanceId)
    {
        using var response = await api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/instances/{instanceId}:stop");
        return await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.Accepted);
    }

    private static async Task<JsonNode> WaitForEventAsync(ControlPlaneApi api, string tenantId, string instanceId, string kind, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var events = (await api.GetAsync($"/api/v1/tenants/{tenantId}/instances/{instanceId}/events?pageSize=100"))["items"]!.AsArray();
            if (events.FirstOrDefault(e => (string?)e!["kind"] == kind) is { } found)
            {
                return found;
            }

            Assert.True(DateTime.UtcNow < deadline, $"No '{kind}' event on {instanceId}: {events.ToJsonString()}");
            await Task.Delay(200);
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"Timed out waiting for {what}.");
            await Task.Delay(100);
        }
    }

    private static void Signal(int processId, string signal)
    {
        using var kill = System.Diagnostics.Process.Start("kill", $"-{signal} {processId}");
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }
}
