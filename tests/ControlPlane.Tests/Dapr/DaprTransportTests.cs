using System.Net;
using System.Text.Json.Nodes;
using ControlPlane.Tests.Support;
using FakeDapr;
using Xunit.Abstractions;

namespace ControlPlane.Tests.Dapr;

/// <summary>Four processes and a Garnet per test: run alone, so their load does not slow the timing-sensitive tests beside them.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DaprProcessesCollection
{
    public const string Name = "Dapr processes";
}

/// <summary>
/// Cluster mode's provisioning path end to end: the control plane and the Provisioner app as two OS processes
/// that share nothing but Dapr pub/sub (fake sidecars at the wire), driving a real Garnet and a real Redis client.
/// </summary>
[Collection(DaprProcessesCollection.Name)]
public sealed class DaprTransportTests(ITestOutputHelper output)
{
    [Fact]
    public async Task An_instance_is_provisioned_scaled_and_deleted_by_the_provisioner_app_over_pub_sub()
    {
        await using var apps = await DaprApps.StartAsync();
        var api = apps.ControlPlane.CreateAdminApi();
        var tenantId = (string)(await api.CreateTenantAsync("Dapr Ltd", "team"))["id"]!;

        var instance = await api.CreateRunningInstanceAsync(tenantId, "over-the-bus");
        var instanceId = (string)instance["id"]!;
        var credentials = await api.GetCredentialsAsync(tenantId, instanceId);
        await using (var connection = await GarnetClient.ConnectAsync(credentials))
        {
            await connection.GetDatabase().StringSetAsync("greeting", "hello over dapr");
        }

        var process = Assert.Single(HostedProcesses.Under(apps.InstanceDirectory(instanceId)));

        using (var scale = await api.SendAsync(HttpMethod.Patch, $"/api/v1/tenants/{tenantId}/instances/{instanceId}", new { size = "medium" }))
        {
            var operation = await ControlPlaneApi.ExpectAsync(scale, HttpStatusCode.Accepted);
            var finished = await api.WaitForOperationAsync(tenantId, (string)operation["id"]!);
            Assert.True((string?)finished["status"] == "succeeded", finished.ToJsonString());
        }

        Assert.Equal("medium", (string?)(await api.GetInstanceAsync(tenantId, instanceId))["size"]);
        Assert.NotEqual(process, Assert.Single(HostedProcesses.Under(apps.InstanceDirectory(instanceId))));
        Assert.Equal("hello over dapr", await GarnetClient.GetWhenServingAsync(credentials, "greeting", TimeSpan.FromSeconds(10)));

        await DeleteAsync(api, tenantId, instanceId);
        Assert.Empty(HostedProcesses.Under(apps.InstanceDirectory(instanceId)));
        Assert.False(Directory.Exists(apps.InstanceDirectory(instanceId)));
        Assert.True(Ports.IsBindable((int)credentials["port"]!));

        // Both directions went through the sidecars' gRPC API, and the password never travelled in the clear.
        Assert.Contains("/dapr.proto.runtime.v1.Dapr/PublishEvent", apps.ControlPlaneSidecar.Calls);
        Assert.Contains("/dapr.proto.runtime.v1.Dapr/PublishEvent", apps.ProvisionerSidecar.Calls);
        Assert.Contains("/dapr.proto.runtime.v1.Dapr/GetSecret", apps.ProvisionerSidecar.Calls);
        Assert.Contains(apps.Broker.Published, message => message.Topic == DaprApps.CommandsTopic);
        Assert.Contains(apps.Broker.Published, message => message.Topic == DaprApps.EventsTopic);
        var password = (string)credentials["password"]!;
        Assert.DoesNotContain(apps.Broker.Published, message => message.Json.Contains(password, StringComparison.Ordinal));
        Assert.DoesNotContain(apps.Provisioner.Output, line => line.Contains(password, StringComparison.Ordinal));
        Assert.DoesNotContain(apps.ControlPlane.Output, line => line.Contains(password, StringComparison.Ordinal));
        Assert.Empty(apps.ControlPlaneSidecar.Warnings);
        Assert.Empty(apps.ProvisionerSidecar.Warnings);

        // Only the sidecar, holding the app token, may post to the apps' Dapr routes; the control plane's are not on
        // its public port at all, token or not.
        using var anyone = new HttpClient();
        foreach (var token in new[] { null, "not-the-token-0123456789", apps.ControlPlaneSidecar.AppApiToken })
        {
            using var onPublicPort = new HttpRequestMessage(HttpMethod.Post, new Uri(apps.ControlPlane.BaseAddress, "/dapr/provisioning/events")) { Content = new StringContent("{}") };
            onPublicPort.Headers.TryAddWithoutValidation("dapr-api-token", token);
            using var refused = await anyone.SendAsync(onPublicPort);
            Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
        }

        var appChannel = new Uri($"http://127.0.0.1:{apps.ControlPlaneAppPort}/dapr/provisioning/events");
        using var forged = await anyone.PostAsync(appChannel, new StringContent("{}"));
        Assert.Equal(HttpStatusCode.Unauthorized, forged.StatusCode);
        using var wrongToken = new HttpRequestMessage(HttpMethod.Post, appChannel) { Content = new StringContent("{}") };
        wrongToken.Headers.Add("dapr-api-token", "not-the-token-0123456789");
        using var forgedWithWrongToken = await anyone.SendAsync(wrongToken);
        Assert.Equal(HttpStatusCode.Unauthorized, forgedWithWrongToken.StatusCode);
        using var forgedCommand = await anyone.PostAsync(new Uri(apps.Provisioner.BaseAddress, "/provisioning/commands"), new StringContent("{}"));
        Assert.Equal(HttpStatusCode.Unauthorized, forgedCommand.StatusCode);

        // The provisioner refuses a body far larger than any command, as the control plane does, even from its sidecar.
        using var huge = new HttpRequestMessage(HttpMethod.Post, new Uri(apps.Provisioner.BaseAddress, "/provisioning/commands"))
        {
            Content = new StringContent("{\"padding\":\"" + new string('x', 1024 * 1024) + "\"}", System.Text.Encoding.UTF8, "application/json"),
        };
        huge.Headers.Add("dapr-api-token", apps.ProvisionerSidecar.AppApiToken);
        using var tooLarge = await anyone.SendAsync(huge);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
    }

    [Fact]
    public async Task Messages_delivered_twice_and_out_of_order_neither_duplicate_an_instance_nor_move_it_backwards()
    {
        await using var apps = await DaprApps.StartAsync(apps =>
        {
            apps.Broker.Topic(DaprApps.CommandsTopic).DeliverTwice = true;
            apps.Broker.Topic(DaprApps.EventsTopic).DeliverTwice = true;
            apps.Broker.Topic(DaprApps.EventsTopic).ReverseWithin = TimeSpan.FromMilliseconds(300);
        });
        var api = apps.ControlPlane.CreateAdminApi();
        var tenantId = (string)(await api.CreateTenantAsync("Twice Inc", "team"))["id"]!;

        var accepted = await api.CreateInstanceAsync(tenantId, "twice");
        var instanceId = (string)accepted["instanceId"]!;
        var create = await api.WaitForOperationAsync(tenantId, (string)accepted["id"]!);
        AssertFinishedOnce(create, "succeeded");
        Assert.Equal("Running", (string?)(await api.GetInstanceAsync(tenantId, instanceId))["state"]);

        using (var stop = await api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/instances/{instanceId}:stop"))
        {
            var operation = await ControlPlaneApi.ExpectAsync(stop, HttpStatusCode.Accepted);
            AssertFinishedOnce(await api.WaitForOperationAsync(tenantId, (string)operation["id"]!), "succeeded");
        }

        using (var start = await api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/instances/{instanceId}:start"))
        {
            var operation = await ControlPlaneApi.ExpectAsync(start, HttpStatusCode.Accepted);
            AssertFinishedOnce(await api.WaitForOperationAsync(tenantId, (string)operation["id"]!), "succeeded");
        }

        // Late copies of the stop's events and the reconcile observations that follow must not undo the start.
        await Task.Delay(TimeSpan.FromSeconds(3));
        var instance = await api.GetInstanceAsync(tenantId, instanceId);
        Assert.Equal("Running", (string?)instance["state"]);
        Assert.Single(HostedProcesses.Under(apps.InstanceDirectory(instanceId)));
        var credentials = await api.GetCredentialsAsync(tenantId, instanceId);
        await using (var connection = await GarnetClient.ConnectAsync(credentials))
        {
            Assert.True(await connection.GetDatabase().StringSetAsync("once", "1"));
        }

        var events = (await api.GetAsync($"/api/v1/tenants/{tenantId}/instances/{instanceId}/events"))["items"]!.AsArray();
        Assert.Single(events, e => (string?)e!["kind"] == "operation-succeeded" && (string?)e["operationId"] == (string)accepted["id"]!);
        Assert.Contains(apps.Broker.Deliveries, delivery => delivery.Topic == DaprApps.CommandsTopic && delivery.AppId == "provisioner");

        await DeleteAsync(api, tenantId, instanceId);
        Assert.Empty(HostedProcesses.Under(apps.InstanceDirectory(instanceId)));
        Assert.False(Directory.Exists(apps.InstanceDirectory(instanceId)));
    }

    [Fact]
    public async Task A_provisioner_killed_mid_step_and_restarted_finishes_the_operation_with_exactly_one_instance()
    {
        var killed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var apps = await DaprApps.StartAsync();
        apps.Broker.OnPublish = message =>
        {
            if (message.Topic == DaprApps.EventsTopic
                && (string?)message.Data?["kind"] == "step-started"
                && ((string?)message.Data["stepName"])?.StartsWith("Start Garnet", StringComparison.Ordinal) == true
                && !killed.Task.IsCompleted)
            {
                // While the step launches Garnet: the process may or may not exist yet, and nothing of it is recorded for sure.
                _ = Task.Run(async () =>
                {
                    await Task.Delay(100);
                    await apps.Provisioner.KillAsync();
                    killed.TrySetResult();
                });
            }

            return message;
        };
        var api = apps.ControlPlane.CreateAdminApi();
        var tenantId = (string)(await api.CreateTenantAsync("Crashing Provisioner Co", "team"))["id"]!;

        var accepted = await api.CreateInstanceAsync(tenantId, "survivor");
        await killed.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await apps.Provisioner.StartAsync();

        var create = await api.WaitForOperationAsync(tenantId, (string)accepted["id"]!);
        AssertFinishedOnce(create, "succeeded");
        var instanceId = (string)accepted["instanceId"]!;
        Assert.Equal("Running", (string?)(await api.GetInstanceAsync(tenantId, instanceId))["state"]);
        // The command was delivered again to the restarted provisioner: the sidecar saw the first delivery fail.
        Assert.Contains(apps.Broker.Deliveries, delivery => delivery.Topic == DaprApps.CommandsTopic && delivery.Result == DeliveryResult.Retry);
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Single(HostedProcesses.Under(apps.InstanceDirectory(instanceId)));
        var credentials = await api.GetCredentialsAsync(tenantId, instanceId);
        await using (var connection = await GarnetClient.ConnectAsync(credentials))
        {
            Assert.True(await connection.GetDatabase().StringSetAsync("after-crash", "fine"));
        }

        await DeleteAsync(api, tenantId, instanceId);
        Assert.Empty(HostedProcesses.Under(apps.InstanceDirectory(instanceId)));
        Assert.False(Directory.Exists(apps.InstanceDirectory(instanceId)));
        Assert.True(Ports.IsBindable((int)credentials["port"]!));
    }

    [Fact]
    public async Task A_command_that_cannot_be_read_goes_to_the_dead_letter_topic_and_fails_its_operation_with_the_reason()
    {
        await using var apps = await DaprApps.StartAsync();
        var damaged = 0;
        apps.Broker.OnPublish = message =>
        {
            // Damaged in transit (or sent by an incompatible version): the spec's generation is not a number.
            if (message.Topic == DaprApps.CommandsTopic
                && (string?)message.Data?["purpose"] == "operation"
                && Interlocked.Exchange(ref damaged, 1) == 0)
            {
                var copy = message.Copy();
                copy.Envelope["data"]!["spec"]!["generation"] = "banana";
                return copy;
            }

            return message;
        };
        var api = apps.ControlPlane.CreateAdminApi();
        var tenantId = (string)(await api.CreateTenantAsync("Poison Pill Ltd", "team"))["id"]!;

        var accepted = await api.CreateInstanceAsync(tenantId, "poisoned");
        var operation = await api.WaitForOperationAsync(tenantId, (string)accepted["id"]!);

        Assert.Equal("failed", (string?)operation["status"]);
        Assert.Equal("command-dead-lettered", (string?)operation["error"]!["code"]);
        Assert.Contains("$.spec.generation", (string)operation["error"]!["message"]!, StringComparison.Ordinal);
        Assert.Contains(
            operation["log"]!.AsArray(),
            entry => ((string)entry!["message"]!).Contains($"dead-letter topic '{DaprApps.DeadLetterTopic}'", StringComparison.Ordinal)
                && ((string)entry["message"]!).Contains("$.spec.generation", StringComparison.Ordinal));
        Assert.True(await EventuallyAsync(() => apps.Broker.Deliveries.Any(delivery => delivery.Topic == DaprApps.CommandsTopic && delivery.Result == DeliveryResult.Drop)));
        Assert.Single(apps.Broker.Published, message => message.Topic == DaprApps.DeadLetterTopic);
        var instanceId = (string)accepted["instanceId"]!;
        var instance = await api.GetInstanceAsync(tenantId, instanceId);
        Assert.Equal("Failed", (string?)instance["state"]);
        Assert.Contains("$.spec.generation", (string)instance["failureReason"]!, StringComparison.Ordinal);
        var events = (await api.GetAsync($"/api/v1/tenants/{tenantId}/instances/{instanceId}/events"))["items"]!.AsArray();
        Assert.Contains(events, e => (string?)e!["kind"] == "command-dead-lettered");
        Assert.Contains(apps.Provisioner.Output, line => line.Contains("Dropping a provisioning command", StringComparison.Ordinal));
        Assert.Empty(HostedProcesses.Under(apps.InstanceDirectory(instanceId)));
    }

    private void AssertFinishedOnce(JsonNode operation, string status)
    {
        output.WriteLine(operation.ToJsonString());
        Assert.True((string?)operation["status"] == status, operation.ToJsonString());
        Assert.Single(operation["log"]!.AsArray(), entry => ((string?)entry!["message"])?.StartsWith("Operation ", StringComparison.Ordinal) == true);
        Assert.DoesNotContain(operation["steps"]!.AsArray(), step => (string?)step!["status"] == "running");
    }

    /// <summary>A sidecar records a delivery just after acting on it: give that record a moment.</summary>
    private static async Task<bool> EventuallyAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        return condition();
    }

    private static async Task DeleteAsync(ControlPlaneApi api, string tenantId, string instanceId)
    {
        using var delete = await api.SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{tenantId}/instances/{instanceId}");
        var operation = await ControlPlaneApi.ExpectAsync(delete, HttpStatusCode.Accepted);
        var finished = await api.WaitForOperationAsync(tenantId, (string)operation["id"]!);
        Assert.True((string?)finished["status"] == "succeeded", finished.ToJsonString());
    }
}
