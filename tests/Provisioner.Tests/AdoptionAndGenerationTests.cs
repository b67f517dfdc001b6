using Provisioner.Deployments;
using Provisioner.Messaging;
using Provisioner.Tests.TestSupport;
using Xunit.Abstractions;

namespace Provisioner.Tests;

public sealed class AdoptionAndGenerationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_restarted_control_plane_adopts_a_running_instance_without_starting_a_second_process()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var spec = harness.Spec("adopted", generation: 1);
        var created = await harness.ApplySucceedsAsync(spec);
        var processId = created.Observed.ProcessId!.Value;

        await harness.RestartControlPlaneAsync();

        Assert.True((await harness.Backend.PlanAsync(spec, CancellationToken.None)).IsUpToDate);
        var reconciled = await harness.ApplySucceedsAsync(spec, ApplyPurpose.Reconcile);
        Assert.Equal(DeploymentStatus.Running, reconciled.Observed.Status);
        Assert.Equal(processId, reconciled.Observed.ProcessId);
        Assert.Null(reconciled.Drift);
        Assert.Empty(reconciled.Repairs);
        Assert.Equal([processId], harness.ProcessesServing("adopted"));

        // The adopted process is not this control plane's child; it must still be stoppable.
        var stopped = await harness.ApplySucceedsAsync(harness.Spec("adopted", DeploymentGoal.Stopped, generation: 2));
        Assert.Equal(DeploymentStatus.Stopped, stopped.Observed.Status);
        Assert.False(ProvisionerHarness.IsAlive(processId));
    }

    [Fact]
    public async Task A_stale_generation_changes_nothing_and_never_brings_a_deleted_instance_back()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var created = await harness.ApplySucceedsAsync(harness.Spec("stale", generation: 5));

        var stale = harness.Spec("stale", DeploymentGoal.Absent, generation: 4);
        Assert.True((await harness.Backend.PlanAsync(stale, CancellationToken.None)).IsUpToDate);
        var ignored = await harness.ApplySucceedsAsync(stale);
        Assert.Equal(DeploymentStatus.Running, ignored.Observed.Status);
        Assert.Equal(created.Observed.ProcessId, ignored.Observed.ProcessId);
        Assert.Equal(5, harness.Record("stale")!.Generation);

        await harness.ApplySucceedsAsync(harness.Spec("stale", DeploymentGoal.Absent, generation: 6));
        var late = await harness.ApplySucceedsAsync(harness.Spec("stale", generation: 5));

        Assert.Equal(DeploymentStatus.Absent, late.Observed.Status);
        Assert.False(Directory.Exists(harness.InstanceDirectory("stale")));
        Assert.Empty(harness.ProcessesServing("stale"));
    }
}
