using System.Security.Cryptography;
using FakeDapr;
using Provisioner.Deployments;
using Provisioner.Messaging;
using Provisioner.Messaging.Wire;
using Xunit.Abstractions;

namespace Provisioner.Tests.Dapr;

/// <summary>The Provisioner as a Dapr app: commands from its sidecar, events back through it, at-least-once on both sides.</summary>
public sealed class ProvisionerAppTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_command_from_the_bus_is_carried_out_and_its_events_come_back_numbered_with_no_password_in_the_clear()
    {
        await using var harness = await DaprProvisionerHarness.StartAsync(output);

        await harness.PublishAsync(Apply(harness.Spec("bus-1"), "op-1"));
        var applied = await harness.WaitForEventAsync<DeploymentApplied>(e => e.OperationId == "op-1");
        await harness.WaitForDeliveryAsync(d => d.Topic == DaprProvisionerHarness.CommandsTopic && d.Result == DeliveryResult.Success);

        Assert.Equal(DeploymentStatus.Running, applied.Observed.Status);
        Assert.Single(harness.ProcessesServing("bus-1"));
        var events = harness.Events.Where(e => e.InstanceId == "bus-1").ToList();
        Assert.All(events, e => Assert.Equal(applied.ExecutionId, e.ExecutionId));
        Assert.Equal(Enumerable.Range(1, events.Count), events.Select(e => e.Sequence));
        Assert.Equal(7, events.Count);
        Assert.DoesNotContain(harness.Broker.Published, message => message.Json.Contains(harness.Password, StringComparison.Ordinal));
        Assert.Equal(("pubsub", DaprProvisionerHarness.CommandsTopic, "/provisioning/commands", DaprProvisionerHarness.DeadLetterTopic), Assert.Single(harness.Sidecar.Subscriptions));
    }

    [Fact]
    public async Task A_command_delivered_twice_at_once_creates_one_instance_and_reports_the_same_outcome_twice()
    {
        await using var harness = await DaprProvisionerHarness.StartAsync(output);
        harness.Broker.Topic(DaprProvisionerHarness.CommandsTopic).DeliverTwice = true;

        await harness.PublishAsync(Apply(harness.Spec("twice"), "op-twice"));
        await harness.WaitForDeliveryAsync(d => d.Topic == DaprProvisionerHarness.CommandsTopic && d.Result == DeliveryResult.Success);
        await harness.WaitForDeliveryAsync(d => d.Topic == DaprProvisionerHarness.CommandsTopic && d.Result == DeliveryResult.Success && d.Attempt == 1
            && harness.Broker.Deliveries.Count(other => other.Topic == DaprProvisionerHarness.CommandsTopic && other.Result == DeliveryResult.Success) == 2);

        var outcomes = harness.Events.OfType<DeploymentApplied>().Where(e => e.OperationId == "op-twice").ToList();
        Assert.Equal(2, outcomes.Count);
        Assert.NotEqual(outcomes[0].ExecutionId, outcomes[1].ExecutionId);
        Assert.All(outcomes, outcome => Assert.Equal(DeploymentStatus.Running, outcome.Observed.Status));
        Assert.Single(harness.ProcessesServing("twice"));
        // The second run found nothing to do: it reported only its outcome.
        Assert.Single(harness.Events, e => e.ExecutionId == outcomes[1].ExecutionId);
    }

    [Fact]
    public async Task When_the_outcome_cannot_be_published_the_command_answers_retry_and_its_redelivery_reports_it()
    {
        await using var harness = await DaprProvisionerHarness.StartAsync(output);
        var refused = 0;
        harness.Broker.OnPublish = message =>
            message.Topic == DaprProvisionerHarness.EventsTopic && (string?)message.Data?["kind"] == "applied" && Interlocked.Exchange(ref refused, 1) == 0
                ? throw new InvalidOperationException("The broker is unavailable.")
                : message;

        await harness.PublishAsync(Apply(harness.Spec("retried"), "op-retried"));
        var applied = await harness.WaitForEventAsync<DeploymentApplied>(e => e.OperationId == "op-retried");
        // The outcome is published before the app answers the delivery that carried it.
        await harness.WaitForDeliveryAsync(d => d.Topic == DaprProvisionerHarness.CommandsTopic && d.Result == DeliveryResult.Success);

        var deliveries = harness.Broker.Deliveries.Where(d => d.Topic == DaprProvisionerHarness.CommandsTopic).ToList();
        Assert.Equal([DeliveryResult.Retry, DeliveryResult.Success], deliveries.Select(d => d.Result));
        Assert.Equal("RETRY", deliveries[0].Detail);
        Assert.Equal(2, deliveries[1].Attempt);
        Assert.Equal(DeploymentStatus.Running, applied.Observed.Status);
        Assert.Single(harness.ProcessesServing("retried"));
    }

    [Theory]
    [InlineData("""{"kind":"apply","instanceId":"bad-1","operationId":"op-bad","issuedAt":"2026-01-01T00:00:00Z","purpose":"operation"}""", "spec")]
    [InlineData("""{"kind":"resize","instanceId":"bad-2","issuedAt":"2026-01-01T00:00:00Z"}""", "resize")]
    [InlineData("""[1, 2, 3]""", "cannot be read")]
    [InlineData("""{"kind":"apply","instanceId":"bad-3","operationId":"op-bad","issuedAt":"2026-01-01T00:00:00Z","purpose":"operation","spec":{"instanceId":"bad-3","tenantId":"t","backend":"local","product":"garnet","version":"2.2.8","size":"small","goal":"running","password":"plaintext","generation":1}}""", "plaintext")]
    public async Task A_command_that_can_never_be_read_is_dropped_to_the_dead_letter_topic_without_touching_anything(string json, string reason)
    {
        await using var harness = await DaprProvisionerHarness.StartAsync(output);

        await harness.PublishRawAsync(json);
        await harness.WaitForDeliveryAsync(d => d.Topic == DaprProvisionerHarness.CommandsTopic);

        var delivery = Assert.Single(harness.Broker.Deliveries, d => d.Topic == DaprProvisionerHarness.CommandsTopic);
        Assert.Equal(DeliveryResult.Drop, delivery.Result);
        var deadLetter = Assert.Single(harness.Broker.Published, message => message.Topic == DaprProvisionerHarness.DeadLetterTopic);
        Assert.Equal(delivery.MessageId, deadLetter.Id);
        Assert.Contains(harness.Logs.Lines, line => line.Contains("Dropping a provisioning command", StringComparison.Ordinal) && line.Contains(reason, StringComparison.Ordinal));
        Assert.Empty(harness.Events);
        Assert.False(Directory.Exists(Path.Combine(harness.Root, "instances")) && Directory.EnumerateDirectories(Path.Combine(harness.Root, "instances")).Any());
    }

    [Fact]
    public async Task A_provisioner_with_another_key_drops_the_command_and_names_both_keys()
    {
        await using var harness = await DaprProvisionerHarness.StartAsync(output, providerKey: RandomNumberGenerator.GetBytes(32));

        await harness.PublishAsync(Apply(harness.Spec("other-key"), "op-key"));
        await harness.WaitForDeliveryAsync(d => d.Topic == DaprProvisionerHarness.CommandsTopic);

        Assert.Equal(DeliveryResult.Drop, Assert.Single(harness.Broker.Deliveries, d => d.Topic == DaprProvisionerHarness.CommandsTopic).Result);
        Assert.Contains(harness.Logs.Lines, line => line.Contains($"signed with key {harness.Wire.Secrets.KeyId}", StringComparison.Ordinal));
        Assert.Empty(harness.ProcessesServing("other-key"));
    }

    [Fact]
    public async Task A_command_replayed_for_another_instance_is_dropped_counted_and_creates_nothing()
    {
        using var refusals = new RefusalCounter();
        await using var harness = await DaprProvisionerHarness.StartAsync(output);
        await harness.PublishAsync(Apply(harness.Spec("replay-a"), "op-a"));
        await harness.WaitForEventAsync<DeploymentApplied>(e => e.OperationId == "op-a");

        // Whoever can read the topic takes A's command, password ciphertext and authenticator included, and sends it as B's.
        var replayed = harness.PublishedCommands.Single();
        replayed["instanceId"] = "replay-b";
        replayed["spec"]!["instanceId"] = "replay-b";
        await harness.PublishRawAsync(replayed.ToJsonString(), sign: false);
        await harness.WaitForDeliveryAsync(d => d.Topic == DaprProvisionerHarness.CommandsTopic && d.Result == DeliveryResult.Drop);

        Assert.Empty(harness.ProcessesServing("replay-b"));
        Assert.False(Directory.Exists(harness.InstanceDirectory("replay-b")));
        Assert.DoesNotContain(harness.Events, e => e.InstanceId == "replay-b");
        Assert.Contains(harness.Logs.Lines, line => line.Contains("Dropping a provisioning command for instance replay-b", StringComparison.Ordinal)
            && line.Contains("does not match its authenticator", StringComparison.Ordinal));
        Assert.Equal(1, refusals.Count("command", "authenticator"));
        Assert.Single(harness.ProcessesServing("replay-a"));
    }

    [Fact]
    public async Task A_forged_higher_generation_is_dropped_and_the_instance_keeps_taking_genuine_commands()
    {
        await using var harness = await DaprProvisionerHarness.StartAsync(output);
        await harness.PublishAsync(Apply(harness.Spec("wedge"), "op-create"));
        await harness.WaitForEventAsync<DeploymentApplied>(e => e.OperationId == "op-create");
        var process = Assert.Single(harness.ProcessesServing("wedge"));

        // Taken as sent, generation 1000 would stop the instance, and the backend would ignore every genuine generation below it.
        var forged = harness.PublishedCommands.Single();
        forged["operationId"] = "op-forged";
        forged["spec"]!["generation"] = 1000;
        forged["spec"]!["goal"] = "stopped";
        await harness.PublishRawAsync(forged.ToJsonString(), sign: false);
        await harness.WaitForDeliveryAsync(d => d.Topic == DaprProvisionerHarness.CommandsTopic && d.Result == DeliveryResult.Drop);

        Assert.Equal([process], harness.ProcessesServing("wedge"));
        Assert.DoesNotContain(harness.Events, e => e.OperationId == "op-forged");

        await harness.PublishAsync(Apply(harness.Spec("wedge", DeploymentGoal.Stopped, generation: 2), "op-stop"));
        var stopped = await harness.WaitForEventAsync<DeploymentApplied>(e => e.OperationId == "op-stop");

        Assert.Equal(DeploymentStatus.Stopped, stopped.Observed.Status);
        Assert.Equal(2, stopped.Observed.Generation);
        Assert.Empty(harness.ProcessesServing("wedge"));
    }

    [Fact]
    public async Task The_fake_sidecar_refuses_an_unknown_pub_sub_as_daprd_does()
    {
        await using var harness = await DaprProvisionerHarness.StartAsync(output);
        using var client = new global::Dapr.Client.DaprClientBuilder().UseGrpcEndpoint(harness.Sidecar.GrpcEndpoint).Build();

        var refusal = await Assert.ThrowsAsync<global::Dapr.DaprException>(() => client.PublishEventAsync("no-such-pubsub", "topic", new { }));

        var status = Assert.IsType<Grpc.Core.RpcException>(refusal.InnerException);
        Assert.Equal(Grpc.Core.StatusCode.InvalidArgument, status.StatusCode);
        Assert.Equal("pubsub no-such-pubsub not found", status.Status.Detail);
    }

    /// <summary>Reads the <c>provisioning.bus.refused</c> counter of the app under test, which runs in this process.</summary>
    private sealed class RefusalCounter : IDisposable
    {
        private readonly System.Diagnostics.Metrics.MeterListener _listener = new();
        private readonly System.Collections.Concurrent.ConcurrentQueue<(string? Direction, string? Reason)> _counted = new();

        public RefusalCounter()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == global::Provisioner.Messaging.Dapr.BusRefusals.MeterName && instrument.Name == global::Provisioner.Messaging.Dapr.BusRefusals.CounterName)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            {
                string? direction = null, reason = null;
                foreach (var tag in tags)
                {
                    (direction, reason) = tag.Key switch
                    {
                        "direction" => ((string?)tag.Value, reason),
                        "reason" => (direction, (string?)tag.Value),
                        _ => (direction, reason),
                    };
                }

                for (var i = 0; i < value; i++)
                {
                    _counted.Enqueue((direction, reason));
                }
            });
            _listener.Start();
        }

        public int Count(string direction, string reason) => _counted.Count(c => c.Direction == direction && c.Reason == reason);

        public void Dispose() => _listener.Dispose();
    }

    private static ApplyDeploymentCommand Apply(DeploymentSpec spec, string operationId) => new()
    {
        InstanceId = spec.InstanceId,
        OperationId = operationId,
        IssuedAt = DateTimeOffset.UtcNow,
        Spec = spec,
        Purpose = ApplyPurpose.Operation,
    };
}
