using Provisioner.Local;
using Provisioner.Tests.TestSupport;
using Xunit.Abstractions;

namespace Provisioner.Tests;

public sealed class InstanceLogTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_chatty_process_log_is_cut_in_place_and_the_process_keeps_writing_at_its_start()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var paths = new LocalInstancePaths(harness.InstancesDirectory, "chatty");
        paths.CreateDirectories();
        // Writes ~1 KiB lines forever; names its data directory like every instance process does.
        var launch = new LaunchCommand(
            "/bin/sh",
            ["-c", "while :; do head -c 1000 /dev/zero | tr '\\0' x; echo; done", "chatty", paths.Data],
            new Dictionary<string, string>(),
            Deployments.Secret.Of("{}"));
        using var process = LocalProcesses.Start(launch, [], paths.Root, paths.Log);
        const long maxBytes = 256 * 1024;
        while (!File.Exists(paths.Log) || new FileInfo(paths.Log).Length <= maxBytes)
        {
            await Task.Delay(10);
        }

        InstanceLogFile.Bound(paths, maxBytes);
        await Task.Delay(50);

        // With O_APPEND the writer continues at the new end; without it the file would jump back to its old size.
        var lengthAfterCut = new FileInfo(paths.Log).Length;
        Assert.InRange(new FileInfo(paths.PreviousLog()).Length, 1, maxBytes);
        Assert.True(lengthAfterCut < maxBytes, $"The log is {lengthAfterCut} bytes after being cut at {maxBytes}.");
        // A writer without O_APPEND would leave a hole of NULs where the cut-away text was.
        Assert.DoesNotContain((byte)0, File.ReadAllBytes(paths.Log));
    }

    [Fact]
    public async Task StopInstancesOnShutdown_stops_instances_with_the_control_plane_and_a_reconcile_restarts_them()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output, configure: settings =>
            settings["Provisioner:Local:StopInstancesOnShutdown"] = "true");
        var spec = harness.Spec("laptop");
        var created = await harness.ApplySucceedsAsync(spec);

        await harness.RestartControlPlaneAsync();

        Assert.False(ProvisionerHarness.IsAlive(created.Observed.ProcessId!.Value));
        var reconciled = await harness.ApplySucceedsAsync(spec, Messaging.ApplyPurpose.Reconcile);
        Assert.NotNull(reconciled.Drift);
        Assert.Equal(Deployments.DeploymentStatus.Running, reconciled.Observed.Status);
        Assert.Equal(created.Observed.Endpoint, reconciled.Observed.Endpoint);
    }
}
