using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using ControlPlane.Tests.Support;
using FakeDapr;
using Provisioner.Deployments;
using Provisioner.Messaging;
using Provisioner.Messaging.Wire;
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
            // Sent by an incompatible version that holds the key: the spec's generation is not a number. (Damaged in transit, it
            // would fail its authenticator instead, and be sent again when the operation stalls.)
            if (message.Topic == DaprApps.CommandsTopic
                && (string?)message.Data?["purpose"] == "operation"
                && Interlocked.Exchange(ref damaged, 1) == 0)
            {
                var copy = message.Copy();
                var data = copy.Envelope["data"]!.AsObject();
                data["spec"]!["generation"] = "banana";
                copy.Envelope["data"] = JsonNode.Parse(apps.Wire.Sign(data, WireDirection.Command).GetRawText());
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

    [Fact]
    public async Task Forged_and_future_stamped_events_are_dropped_and_neither_move_the_generation_nor_fail_the_instance()
    {
        await using var apps = await DaprApps.StartAsync();
        var api = apps.ControlPlane.CreateAdminApi();
        var tenantId = (string)(await api.CreateTenantAsync("Forged Events plc", "team"))["id"]!;
        var accepted = await api.CreateInstanceAsync(tenantId, "targeted");
        var instanceId = (string)accepted["instanceId"]!;
        AssertFinishedOnce(await api.WaitForOperationAsync(tenantId, (string)accepted["id"]!), "succeeded");
        var created = apps.Broker.DataOf(DaprApps.EventsTopic).Last(data => (string?)data!["kind"] == "applied" && (string?)data["operationId"] == (string)accepted["id"]!)!;
        var generation = (long)created["generation"]!;

        // Without the key: a check reporting the backend far ahead (taken, the instance would jump past generation 1000)
        // and a failed check (taken, it would turn the instance unhealthy).
        var ahead = apps.Wire.WriteEvent(Check(instanceId, generation, DateTimeOffset.UtcNow, observedGeneration: 1000)).Deserialize<JsonObject>()!;
        ahead.Remove("authenticator");
        var unsigned = await apps.PublishEventAsync(JsonSerializer.SerializeToElement(ahead));
        var tampered = apps.Wire.WriteEvent(Check(instanceId, generation, DateTimeOffset.UtcNow, observedGeneration: generation)).Deserialize<JsonObject>()!;
        tampered["observed"]!["generation"] = 1000;
        var altered = await apps.PublishEventAsync(JsonSerializer.SerializeToElement(tampered));
        // With the key, from a worker whose clock is a year ahead: taken, no genuine check would count until then.
        var future = await apps.PublishEventAsync(apps.Wire.WriteEvent(Check(instanceId, generation, DateTimeOffset.UtcNow.AddYears(1), observedGeneration: generation)));

        foreach (var id in new[] { unsigned, altered, future })
        {
            Assert.True(await EventuallyAsync(() => apps.Broker.Deliveries.Any(d => d.MessageId == id && d.AppId == "controlplane")), id);
            Assert.Equal(DeliveryResult.Drop, apps.Broker.Deliveries.Single(d => d.MessageId == id && d.AppId == "controlplane").Result);
        }

        Assert.Contains(apps.ControlPlane.Output, line => line.Contains("has no authenticator", StringComparison.Ordinal));
        Assert.Contains(apps.ControlPlane.Output, line => line.Contains("does not match its authenticator", StringComparison.Ordinal));
        Assert.Contains(apps.ControlPlane.Output, line => line.Contains("ahead of this side's clock", StringComparison.Ordinal));
        var events = (await api.GetAsync($"/api/v1/tenants/{tenantId}/instances/{instanceId}/events"))["items"]!.AsArray();
        Assert.DoesNotContain(events, e => (string?)e!["kind"] == "generation-behind");
        var instance = await api.GetInstanceAsync(tenantId, instanceId);
        Assert.Equal("Running", (string?)instance["state"]);

        // Genuine work goes on at the instance's own generation.
        using (var stop = await api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/instances/{instanceId}:stop"))
        {
            var operation = await ControlPlaneApi.ExpectAsync(stop, HttpStatusCode.Accepted);
            AssertFinishedOnce(await api.WaitForOperationAsync(tenantId, (string)operation["id"]!), "succeeded");
        }

        Assert.Contains(apps.Broker.DataOf(DaprApps.EventsTopic), data => (string?)data!["kind"] == "applied" && (long)data["generation"]! == generation + 1);
        Assert.Empty(HostedProcesses.Under(apps.InstanceDirectory(instanceId)));
        await DeleteAsync(api, tenantId, instanceId);
    }

    private static DeploymentApplied Check(string instanceId, long generation, DateTimeOffset at, long observedGeneration) => new()
    {
        InstanceId = instanceId,
        Generation = generation,
        Purpose = ApplyPurpose.Reconcile,
        OccurredAt = at,
        ExecutionId = Guid.NewGuid().ToString("N"),
        Sequence = 1,
        Observed = new ObservedDeployment { Status = DeploymentStatus.Running, Health = DeploymentHealth.Unhealthy, Generation = observedGeneration },
    };

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
