using System.Diagnostics;
using System.Globalization;
using System.Text;
using Provisioner.Deployments;
using Provisioner.Messaging;
using Provisioner.Tests.TestSupport;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Provisioner.Tests;

/// <summary>
/// Instances are kept from the control plane's secrets and from each other: each runs under a user of its own, with
/// limits and a disk of its size, and gets its password through a pipe. These tests run as root, as CI does.
/// </summary>
public sealed class InstanceIsolationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task An_instance_runs_as_its_own_user_that_cannot_read_the_control_planes_database_or_another_instances_data()
    {
        RequireRoot();
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var first = (await harness.ApplySucceedsAsync(harness.Spec("first"))).Observed;
        var second = (await harness.ApplySucceedsAsync(harness.Spec("second"))).Observed;
        // The control plane's database sits beside the instances, as <dataDir>/controlplane.db does.
        var database = Path.Combine(harness.Root, "controlplane.db");
        await File.WriteAllTextAsync(database, "instance passwords");
        File.SetUnixFileMode(database, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        var firstUser = UserOf(first.ProcessId!.Value);
        var secondUser = UserOf(second.ProcessId!.Value);
        Assert.NotEqual(0, firstUser);
        Assert.NotEqual(firstUser, secondUser);
        var firstData = Path.Combine(harness.InstanceDirectory("first"), "data");
        var secondData = Path.Combine(harness.InstanceDirectory("second"), "data");
        Assert.Equal(firstUser, Provisioner.Local.UnixFileOwner.Of(firstData));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(firstData));

        // As the first instance's user: its own data is there to read, nothing else is.
        Assert.Equal(0, RunAs(firstUser, "ls", firstData).ExitCode);
        AssertRefused(RunAs(firstUser, "cat", database));
        AssertRefused(RunAs(firstUser, "ls", secondData));
        AssertRefused(RunAs(firstUser, "cat", Path.Combine(harness.InstanceDirectory("second"), "deployment.json")));
        AssertRefused(RunAs(firstUser, "cat", Path.Combine(harness.InstanceDirectory("second"), "process.log")));
        AssertRefused(RunAs(firstUser, "ls", harness.InstancesDirectory));
    }

    [Fact]
    public async Task The_password_is_neither_on_the_command_line_nor_in_the_environment_of_the_instance_process()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var observed = (await harness.ApplySucceedsAsync(harness.Spec("secret"))).Observed;

        var processId = observed.ProcessId!.Value;
        Assert.DoesNotContain(harness.Password, await File.ReadAllTextAsync($"/proc/{processId}/cmdline"), StringComparison.Ordinal);
        Assert.DoesNotContain(harness.Password, Encoding.UTF8.GetString(await File.ReadAllBytesAsync($"/proc/{processId}/environ")), StringComparison.Ordinal);
        Assert.DoesNotContain(harness.Password, Encoding.UTF8.GetString(await File.ReadAllBytesAsync(Path.Combine(harness.InstanceDirectory("secret"), "process.log"))), StringComparison.Ordinal);
        // It did reach the server, by its standard input: the password opens it.
        using var redis = harness.Connect(observed.Endpoint!);
        Assert.True(await redis.GetDatabase().StringSetAsync("k", "v"));
    }

    [Fact]
    public async Task The_instance_process_has_the_configured_file_and_process_limits()
    {
        RequireRoot();
        await using var harness = await ProvisionerHarness.StartAsync(output, configure: settings =>
        {
            settings["Provisioner:Local:MaxOpenFiles"] = "3000";
            settings["Provisioner:Local:MaxProcesses"] = "400";
        });
        var observed = (await harness.ApplySucceedsAsync(harness.Spec("limited"))).Observed;

        var limits = await File.ReadAllLinesAsync($"/proc/{observed.ProcessId}/limits");
        Assert.Matches(@"^Max open files\s+3000\s+3000\s", limits.Single(line => line.StartsWith("Max open files", StringComparison.Ordinal)));
        Assert.Matches(@"^Max processes\s+400\s+400\s", limits.Single(line => line.StartsWith("Max processes", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task An_instance_filled_past_its_disk_quota_has_its_writes_refused_reports_it_and_takes_no_more_of_the_machines_disk()
    {
        RequireRoot();
        await using var harness = await ProvisionerHarness.StartAsync(output, configure: settings =>
            settings["Catalog:Products:garnet:Sizes:small:DiskGb"] = "1");
        var spec = harness.Spec("full");
        var observed = (await harness.ApplySucceedsAsync(spec)).Observed;
        var image = Path.Combine(harness.InstanceDirectory("full"), "disk.img");
        const long quota = 1024L * 1024 * 1024;

        // Writes of 256 KiB values, each in the append-only file and the log on disk, until the server refuses one.
        var value = new byte[256 * 1024];
        Random.Shared.NextBytes(value);
        Exception? refusal = null;
        long written = 0;
        using (var redis = harness.Connect(observed.Endpoint!))
        {
            var database = redis.GetDatabase();
            for (var key = 0; written < 3 * quota && refusal is null; key++)
            {
                try
                {
                    await database.StringSetAsync("key-" + key.ToString(CultureInfo.InvariantCulture), value);
                    written += value.Length;
                }
                catch (Exception exception) when (exception is RedisException or RedisTimeoutException)
                {
                    refusal = exception;
                }
            }
        }

        output.WriteLine($"Wrote {written / (1024 * 1024)} MB before: {refusal?.Message}");
        Assert.NotNull(refusal);
        // Checkpoints copy the data, so the disk fills before the quota's worth of values is written; never much after.
        Assert.InRange(written, quota / 4, quota);
        Assert.True(AllocatedBytes(image) <= quota, $"The disk image takes {AllocatedBytes(image)} bytes, more than its {quota}.");
        var now = await harness.Backend.ObserveAsync(spec, CancellationToken.None);
        Assert.Contains("disk quota is used up", now.Detail, StringComparison.Ordinal);
        Assert.NotEqual(DeploymentHealth.Healthy, now.Health);
    }

    [Fact]
    public async Task A_size_with_more_disk_grows_the_instances_disk_and_keeps_its_data()
    {
        RequireRoot();
        await using var harness = await ProvisionerHarness.StartAsync(output, configure: settings =>
        {
            settings["Catalog:Products:garnet:Sizes:small:DiskGb"] = "1";
            settings["Catalog:Products:garnet:Sizes:medium:DiskGb"] = "2";
        });
        var small = (await harness.ApplySucceedsAsync(harness.Spec("growing"))).Observed;
        using (var redis = harness.Connect(small.Endpoint!))
        {
            Assert.True(await redis.GetDatabase().StringSetAsync("kept", "yes"));
        }

        var data = Path.Combine(harness.InstanceDirectory("growing"), "data");
        var before = new DriveInfo(data).TotalSize;
        var medium = (await harness.ApplySucceedsAsync(harness.Spec("growing", size: "medium", generation: 2))).Observed;

        var after = new DriveInfo(data).TotalSize;
        Assert.InRange(before, 900L << 20, 1L << 30);
        Assert.InRange(after, 1900L << 20, 2L << 30);
        using var reconnected = harness.Connect(medium.Endpoint!);
        Assert.Equal("yes", (string?)await reconnected.GetDatabase().StringGetAsync("kept"));
    }

    [Fact]
    public async Task A_product_installed_where_instances_users_cannot_reach_it_fails_the_create_with_what_to_open()
    {
        RequireRoot();
        // As a build under /root would be: the program is there, behind a directory only its owner may enter.
        using var closed = new ClosedDirectory();
        var home = Path.Combine(closed.Path, "garnet");
        Directory.CreateSymbolicLink(home, Path.Combine(AppContext.BaseDirectory, "products", "garnet"));
        await using var harness = await ProvisionerHarness.StartAsync(output, configure: settings =>
            settings["Catalog:Products:garnet:Versions:2.2.8:Home"] = home);

        var failed = Assert.IsType<DeploymentFailed>(await harness.ApplyAsync(harness.Spec("unreachable")));

        Assert.Equal("product-unreachable", failed.ErrorCode);
        Assert.Contains($"chmod o+rx {closed.Path}", failed.ErrorMessage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_instances_directory_behind_a_closed_directory_is_named_at_start_up_and_fails_the_create_with_what_to_open()
    {
        RequireRoot();
        using var closed = new ClosedDirectory();
        var instances = Path.Combine(closed.Path, "instances");
        await using var harness = await ProvisionerHarness.StartAsync(output, configure: settings =>
            settings["Provisioner:Local:InstancesDirectory"] = instances);

        Assert.Contains(harness.Logs.Lines, line => line.Contains($"cannot pass through {closed.Path} to reach their data in {instances}", StringComparison.Ordinal));
        var failed = Assert.IsType<DeploymentFailed>(await harness.ApplyAsync(harness.Spec("behind")));
        Assert.Equal("instance-directory-unreachable", failed.ErrorCode);
        Assert.Contains($"chmod o+rx {closed.Path}", failed.ErrorMessage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_isolation_off_the_backend_says_so_at_start_up_and_runs_instances_as_its_own_user()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output, configure: settings => settings["Provisioner:Local:Isolation"] = "Off");
        var observed = (await harness.ApplySucceedsAsync(harness.Spec("plain"))).Observed;

        Assert.Single(harness.Logs.Lines, line => line.Contains("Hosted instances are NOT isolated: Provisioner:Local:Isolation is Off", StringComparison.Ordinal));
        Assert.Equal(Provisioner.Local.UnixFileOwner.Current, UserOf(observed.ProcessId!.Value));
        Assert.False(File.Exists(Path.Combine(harness.InstanceDirectory("plain"), "disk.img")));
        using var redis = harness.Connect(observed.Endpoint!);
        Assert.True(await redis.GetDatabase().StringSetAsync("k", "v"));
    }

    private static void RequireRoot() =>
        Assert.True(Environment.IsPrivilegedProcess, "Isolating instances needs root, as CI runs these tests; run them as root.");

    private static int UserOf(int processId) =>
        int.Parse(
            File.ReadAllLines($"/proc/{processId}/status").Single(line => line.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t')[1],
            CultureInfo.InvariantCulture);

    private static (int ExitCode, string Error) RunAs(int userId, string program, string argument)
    {
        var startInfo = new ProcessStartInfo("/usr/bin/setpriv") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var part in new[] { $"--reuid={userId}", "--regid=65534", "--clear-groups", "--", program, argument })
        {
            startInfo.ArgumentList.Add(part);
        }

        using var process = Process.Start(startInfo)!;
        _ = process.StandardOutput.ReadToEnd();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, error);
    }

    private static void AssertRefused((int ExitCode, string Error) result)
    {
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("Permission denied", result.Error, StringComparison.Ordinal);
    }

    private static long AllocatedBytes(string path)
    {
        var startInfo = new ProcessStartInfo("du", ["-B1", path]) { RedirectStandardOutput = true };
        using var process = Process.Start(startInfo)!;
        var text = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return long.Parse(text.Split('\t')[0], CultureInfo.InvariantCulture);
    }

    /// <summary>A directory only its owner may enter (0700, as a temporary directory is made).</summary>
    private sealed class ClosedDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("closed-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
