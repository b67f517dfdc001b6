using Provisioner.Deployments;
using Provisioner.Messaging;
using Provisioner.Tests.TestSupport;
using Xunit.Abstractions;

namespace Provisioner.Tests;

public sealed class AdoptionAndGenerationTests(ITestOutputHelper output)
{
    /// <summary>
    /// A backup of the data directory (as cron would run it) names the directory by its whole path, as the instance's own
    /// process does. When the control plane must search /proc (it died between launching a process and recording it),
    /// only the product's program is taken for the instance; the backup is neither adopted nor killed, then or on repair.
    /// </summary>
    [Fact]
    public async Task A_backup_job_naming_the_data_directory_is_never_taken_for_the_instance_nor_killed()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var spec = harness.Spec("backed-up", generation: 1);
        var garnet = (await harness.ApplySucceedsAsync(spec)).Observed.ProcessId!.Value;
        var data = Path.Combine(harness.InstanceDirectory("backed-up"), "data");
        using var backup = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", "sleep 120; true", data } })!;
        try
        {
            Assert.Equal(new[] { garnet, backup.Id }.Order(), harness.ProcessesServing("backed-up").Order());
            var record = Path.Combine(harness.InstanceDirectory("backed-up"), "deployment.json");
            var interrupted = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(record))!;
            interrupted["ProcessId"] = null;
            interrupted["ProcessStartTime"] = null;
            interrupted["LaunchPending"] = true;
            await File.WriteAllTextAsync(record, interrupted.ToJsonString());
            await harness.RestartControlPlaneAsync();

            // The product's process is found (taken over or replaced); the backup is not it.
            var found = (await harness.ApplySucceedsAsync(spec, ApplyPurpose.Reconcile)).Observed.ProcessId!.Value;
            Assert.NotEqual(backup.Id, found);
            Assert.Equal(new[] { found, backup.Id }.Order(), harness.ProcessesServing("backed-up").Order());

            using (var killed = System.Diagnostics.Process.GetProcessById(found))
            {
                killed.Kill();
                await killed.WaitForExitAsync();
            }

            var repaired = await harness.ApplySucceedsAsync(spec, ApplyPurpose.Reconcile);
            Assert.Equal(DeploymentStatus.Running, repaired.Observed.Status);
            Assert.NotEqual(backup.Id, repaired.Observed.ProcessId);
            Assert.False(backup.HasExited);
            Assert.True(ProvisionerHarness.IsAlive(backup.Id));
        }
        finally
        {
            backup.Kill();
        }
    }

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
