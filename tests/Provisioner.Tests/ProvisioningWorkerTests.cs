using Provisioner.Deployments;
using Provisioner.Messaging;
using Provisioner.Tests.TestSupport;
using Xunit.Abstractions;

namespace Provisioner.Tests;

public sealed class ProvisioningWorkerTests(ITestOutputHelper output)
{
    [Fact]
    public async Task An_operation_sent_on_the_bus_reports_each_step_and_then_the_result()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var spec = harness.Spec("steps");

        await harness.Bus.SendAsync(ProvisionerHarness.Command(spec, ApplyPurpose.Operation, "op-create"));
        await harness.Events.WaitForAsync<DeploymentApplied>(e => e.OperationId == "op-create");

        var sequence = harness.Events.For("steps").Select(Describe).ToList();
        Assert.Equal(
            [
                "started 1/3 Reserve port and prepare data directory",
                "completed 1/3 Reserve port and prepare data directory",
                "started 2/3 Start Garnet 2.2.8 (small)",
                "completed 2/3 Start Garnet 2.2.8 (small)",
                "started 3/3 Wait for authenticated PING",
                "completed 3/3 Wait for authenticated PING",
                "applied Running",
            ],
            sequence);
        Assert.All(harness.Events.For("steps"), e => Assert.Equal("op-create", e.OperationId));

        // A reconcile with nothing to repair still reports what it observed: that is how health reaches the control plane.
        await harness.Bus.SendAsync(ProvisionerHarness.Command(spec, ApplyPurpose.Reconcile));
        var reconciled = await harness.Events.WaitForAsync<DeploymentApplied>(e => e.Purpose == ApplyPurpose.Reconcile);
        Assert.Equal(DeploymentHealth.Healthy, reconciled.Observed.Health);
        Assert.Null(reconciled.Drift);
        Assert.Empty(reconciled.Repairs);
        Assert.Equal(7, harness.Events.For("steps").Count(e => e.Purpose == ApplyPurpose.Operation));
    }

    [Fact]
    public async Task A_cancel_during_startup_is_reported_and_the_rollback_leaves_nothing_behind()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var spec = harness.Spec("cancelled", generation: 1);
        // The cancel arrives exactly while the instance is starting: after its process was launched.
        harness.Events.OnPublish = async e =>
        {
            if (e is DeploymentStepStarted { StepName: "Wait for authenticated PING" })
            {
                await harness.Worker.HandleAsync(Cancel("cancelled", "op-cancel"), CancellationToken.None);
            }
        };

        var outcome = await harness.ApplyAsync(spec, ApplyPurpose.Operation, "op-cancel");

        var cancelled = Assert.IsType<DeploymentCancelled>(outcome);
        Assert.NotEqual(DeploymentStatus.Absent, cancelled.Observed.Status);
        Assert.DoesNotContain(harness.Events.For("cancelled"), e => e is DeploymentStepCompleted { StepName: "Wait for authenticated PING" });
        var port = cancelled.Observed.Endpoint!.Port;

        harness.Events.OnPublish = null;
        var rolledBack = await harness.ApplyAsync(spec with { Goal = DeploymentGoal.Absent, Generation = 2 }, ApplyPurpose.Rollback, "op-cancel");

        var applied = Assert.IsType<DeploymentApplied>(rolledBack);
        Assert.Equal(DeploymentStatus.Absent, applied.Observed.Status);
        Assert.Empty(harness.ProcessesServing("cancelled"));
        Assert.False(Directory.Exists(harness.InstanceDirectory("cancelled")));
        Assert.True(Local.LocalPortAllocator.IsFree(System.Net.IPAddress.Loopback, port));
    }

    [Fact]
    public async Task A_cancel_that_arrives_before_its_apply_wins()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);

        await harness.Worker.HandleAsync(Cancel("early", "op-early"), CancellationToken.None);
        var outcome = await harness.ApplyAsync(harness.Spec("early"), ApplyPurpose.Operation, "op-early");

        var cancelled = Assert.IsType<DeploymentCancelled>(outcome);
        Assert.Equal(DeploymentStatus.Absent, cancelled.Observed.Status);
        Assert.DoesNotContain(harness.Events.For("early"), e => e is DeploymentStepStarted);
        Assert.False(Directory.Exists(harness.InstanceDirectory("early")));
    }

    [Fact]
    public async Task A_cancel_cannot_interrupt_removing_data()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        await harness.ApplySucceedsAsync(harness.Spec("removing", DeploymentGoal.Stopped, generation: 1));
        harness.Events.OnPublish = async e =>
        {
            if (e is DeploymentStepStarted { StepName: "Remove data and release port" })
            {
                await harness.Worker.HandleAsync(Cancel("removing", "op-delete"), CancellationToken.None);
            }
        };

        var outcome = await harness.ApplyAsync(harness.Spec("removing", DeploymentGoal.Absent, generation: 2), ApplyPurpose.Operation, "op-delete");

        var applied = Assert.IsType<DeploymentApplied>(outcome);
        Assert.Equal(DeploymentStatus.Absent, applied.Observed.Status);
        Assert.False(Directory.Exists(harness.InstanceDirectory("removing")));
    }

    [Fact]
    public async Task Host_shutdown_during_an_operation_reports_nothing_and_the_redelivered_apply_completes()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var spec = harness.Spec("interrupted");
        var command = ProvisionerHarness.Command(spec, ApplyPurpose.Operation, "op-interrupted");
        var restart = new TaskCompletionSource();
        harness.Events.OnPublish = e =>
        {
            if (e is DeploymentStepStarted { StepName: "Wait for authenticated PING" })
            {
                restart.TrySetResult();
            }

            return Task.CompletedTask;
        };

        await harness.Bus.SendAsync(command);
        await restart.Task;
        await harness.RestartControlPlaneAsync();

        Assert.DoesNotContain(harness.Events.For("interrupted"), e => e is DeploymentApplied or DeploymentFailed or DeploymentCancelled);
        harness.Events.OnPublish = null;
        await harness.Bus.SendAsync(command);
        var applied = await harness.Events.WaitForAsync<DeploymentApplied>(e => e.InstanceId == "interrupted");
        Assert.Equal(DeploymentStatus.Running, applied.Observed.Status);
        Assert.Single(harness.ProcessesServing("interrupted"));
    }

    private static CancelOperationCommand Cancel(string instanceId, string operationId) => new()
    {
        InstanceId = instanceId,
        OperationId = operationId,
        IssuedAt = DateTimeOffset.UtcNow,
    };

    private static string Describe(ProvisioningEvent e) => e switch
    {
        DeploymentStepStarted step => $"started {step.StepNumber}/{step.StepCount} {step.StepName}",
        DeploymentStepCompleted step => $"completed {step.StepNumber}/{step.StepCount} {step.StepName}",
        DeploymentApplied applied => $"applied {applied.Observed.Status}",
        _ => e.GetType().Name,
    };
}
