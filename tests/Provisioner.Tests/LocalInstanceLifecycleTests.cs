using System.Net.Sockets;
using Provisioner.Deployments;
using Provisioner.Health;
using Provisioner.Local;
using Provisioner.Messaging;
using Provisioner.Tests.TestSupport;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Provisioner.Tests;

public sealed class LocalInstanceLifecycleTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Create_serves_SET_and_GET_to_a_client_with_the_password()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);

        var applied = await harness.ApplySucceedsAsync(harness.Spec("create"));

        Assert.Equal(DeploymentStatus.Running, applied.Observed.Status);
        Assert.Equal(DeploymentHealth.Healthy, applied.Observed.Health);
        Assert.InRange(applied.Observed.Endpoint!.Port, harness.FirstPort, harness.LastPort);
        using (var redis = harness.Connect(applied.Observed.Endpoint))
        {
            var database = redis.GetDatabase();
            Assert.True(await database.StringSetAsync("greeting", "hello"));
            Assert.Equal("hello", (string?)await database.StringGetAsync("greeting"));
        }

        var processId = applied.Observed.ProcessId!.Value;
        Assert.DoesNotContain(harness.Password, await File.ReadAllTextAsync($"/proc/{processId}/cmdline"), StringComparison.Ordinal);
        // Its own session: Ctrl+C in the control plane's terminal or the control plane's exit does not reach it.
        var stat = await File.ReadAllTextAsync($"/proc/{processId}/stat");
        Assert.Equal(processId.ToString(System.Globalization.CultureInfo.InvariantCulture), stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[3]);
        // Others may only pass through to the data (its own user does, when instances are isolated); the data is its owner's alone.
        Assert.Equal(
            UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | (Environment.IsPrivilegedProcess ? UnixFileMode.OtherExecute : 0),
            File.GetUnixFileMode(harness.InstanceDirectory("create")));
        Assert.Equal(
            UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute,
            File.GetUnixFileMode(Path.Combine(harness.InstanceDirectory("create"), "data")));
    }

    [Fact]
    public async Task A_wrong_password_is_refused()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var endpoint = (await harness.ApplySucceedsAsync(harness.Spec("password"))).Observed.Endpoint!;

        Assert.Throws<RedisConnectionException>(() => harness.Connect(endpoint, password: "not-the-password"));
        var probe = await RespPingProbe.PingAsync(endpoint.Host, endpoint.Port, "not-the-password", TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.False(probe.Answered);
        Assert.Contains("AUTH was refused", probe.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_killed_process_is_reported_as_drift_and_restarted_on_the_same_port_with_its_data()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var spec = harness.Spec("killed");
        var created = await harness.ApplySucceedsAsync(spec);
        using (var redis = harness.Connect(created.Observed.Endpoint!))
        {
            await redis.GetDatabase().StringSetAsync("order:1", "paid");
        }

        var killed = created.Observed.ProcessId!.Value;
        using (var process = System.Diagnostics.Process.GetProcessById(killed))
        {
            process.Kill();
            await process.WaitForExitAsync();
        }

        var plan = await harness.Backend.PlanAsync(spec, CancellationToken.None);
        Assert.Contains($"Garnet process {killed} ", plan.Drift, StringComparison.Ordinal);
        Assert.Contains("Start Garnet 2.2.8 (small)", plan.Steps.Select(step => step.Name));

        var repaired = await harness.ApplySucceedsAsync(spec, ApplyPurpose.Reconcile);

        Assert.Equal(plan.Drift, repaired.Drift);
        Assert.Equal(["Start Garnet 2.2.8 (small)", "Wait for authenticated PING"], repaired.Repairs);
        Assert.Equal(DeploymentStatus.Running, repaired.Observed.Status);
        Assert.Equal(created.Observed.Endpoint, repaired.Observed.Endpoint);
        Assert.NotEqual(killed, repaired.Observed.ProcessId);
        using (var redis = harness.Connect(repaired.Observed.Endpoint!))
        {
            Assert.Equal("paid", (string?)await redis.GetDatabase().StringGetAsync("order:1"));
        }
    }

    [Fact]
    public async Task Stop_keeps_data_and_port_and_start_serves_them_again()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var created = await harness.ApplySucceedsAsync(harness.Spec("stop-start", generation: 1));
        using (var redis = harness.Connect(created.Observed.Endpoint!))
        {
            await redis.GetDatabase().StringSetAsync("kept", "yes");
        }

        var stopped = await harness.ApplySucceedsAsync(harness.Spec("stop-start", DeploymentGoal.Stopped, generation: 2));

        Assert.Equal(DeploymentStatus.Stopped, stopped.Observed.Status);
        Assert.Equal(created.Observed.Endpoint, stopped.Observed.Endpoint);
        Assert.False(ProvisionerHarness.IsAlive(created.Observed.ProcessId!.Value));
        Assert.Empty(harness.ProcessesServing("stop-start"));

        var started = await harness.ApplySucceedsAsync(harness.Spec("stop-start", generation: 3));

        Assert.Equal(DeploymentStatus.Running, started.Observed.Status);
        Assert.Equal(created.Observed.Endpoint, started.Observed.Endpoint);
        using (var redis = harness.Connect(started.Observed.Endpoint!))
        {
            Assert.Equal("yes", (string?)await redis.GetDatabase().StringGetAsync("kept"));
        }
    }

    [Fact]
    public async Task A_new_password_in_the_spec_is_reloaded_into_the_running_process_and_the_old_one_is_refused()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var first = await harness.ApplySucceedsAsync(harness.Spec("rotate", generation: 1));
        using (var redis = harness.Connect(first.Observed.Endpoint!))
        {
            await redis.GetDatabase().StringSetAsync("kept", "across the rotation");
        }

        var rotated = harness.Spec("rotate", generation: 2) with { Password = Secret.Of("rotated-" + Guid.NewGuid().ToString("N")) };
        var applied = await harness.ApplySucceedsAsync(rotated);

        // Reloaded (ACL LOAD as the platform's user), not restarted: the same process serves with the new password only.
        Assert.Equal(first.Observed.ProcessId, applied.Observed.ProcessId);
        using (var redis = harness.Connect(applied.Observed.Endpoint!, rotated.Password.Value))
        {
            Assert.Equal("across the rotation", (string?)await redis.GetDatabase().StringGetAsync("kept"));
        }

        Assert.Throws<RedisConnectionException>(() => harness.Connect(applied.Observed.Endpoint!));
        var accessControl = await File.ReadAllTextAsync(Path.Combine(harness.InstanceDirectory("rotate"), "users.acl"));
        Assert.DoesNotContain(rotated.Password.Value, accessControl, StringComparison.Ordinal);
        Assert.DoesNotContain(harness.PlatformPassword, accessControl, StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(harness.InstanceDirectory("rotate"), "users.acl")));
    }

    [Fact]
    public async Task A_size_change_restarts_the_instance_with_the_new_memory_cap()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var small = await harness.ApplySucceedsAsync(harness.Spec("resize", size: "small", generation: 1));
        using (var redis = harness.Connect(small.Observed.Endpoint!))
        {
            await redis.GetDatabase().StringSetAsync("survives", "resize");
        }

        var medium = await harness.ApplySucceedsAsync(harness.Spec("resize", size: "medium", generation: 2));

        Assert.Equal("medium", medium.Observed.Size);
        Assert.NotEqual(small.Observed.ProcessId, medium.Observed.ProcessId);
        Assert.Equal("0x20000000", ProvisionerHarness.Environment(medium.Observed.ProcessId!.Value, "DOTNET_GCHeapHardLimit"));
        using var resized = harness.Connect(medium.Observed.Endpoint!);
        // INFO is the platform's: the customer's user may not read (or reset) the server's counters.
        var info = await RespPingProbe.PingAsync(
            medium.Observed.Endpoint!.Host, medium.Observed.Endpoint.Port, InstanceAccess.PlatformUser, harness.PlatformPassword, TimeSpan.FromSeconds(10), ["memory"], CancellationToken.None);
        var memory = info.Info!.Split('\n', StringSplitOptions.TrimEntries).Where(line => line.Contains(':', StringComparison.Ordinal))
            .ToDictionary(line => line[..line.IndexOf(':', StringComparison.Ordinal)], line => line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..]);
        Assert.Equal((512L * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture), memory["total_system_memory"]);
        Assert.Equal("resize", (string?)await resized.GetDatabase().StringGetAsync("survives"));
    }

    [Fact]
    public async Task Delete_stops_the_process_releases_the_port_and_removes_the_directory()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var created = await harness.ApplySucceedsAsync(harness.Spec("delete", generation: 1));

        var deleted = await harness.ApplySucceedsAsync(harness.Spec("delete", DeploymentGoal.Absent, generation: 2));

        Assert.Equal(DeploymentStatus.Absent, deleted.Observed.Status);
        Assert.False(ProvisionerHarness.IsAlive(created.Observed.ProcessId!.Value));
        Assert.False(Directory.Exists(harness.InstanceDirectory("delete")));
        Assert.True(LocalPortAllocator.IsFree(System.Net.IPAddress.Loopback, created.Observed.Endpoint!.Port));
        Assert.True((await harness.Backend.PlanAsync(harness.Spec("delete", DeploymentGoal.Absent, generation: 2), CancellationToken.None)).IsUpToDate);
    }

    [Fact]
    public async Task A_foreign_listener_on_the_reserved_port_moves_the_instance_to_a_new_port()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);
        var created = await harness.ApplySucceedsAsync(harness.Spec("squatted", generation: 1));
        using (var redis = harness.Connect(created.Observed.Endpoint!))
        {
            await redis.GetDatabase().StringSetAsync("moved", "with-me");
        }

        await harness.ApplySucceedsAsync(harness.Spec("squatted", DeploymentGoal.Stopped, generation: 2));
        var reservedPort = created.Observed.Endpoint!.Port;
        using var squatter = new TcpListener(System.Net.IPAddress.Loopback, reservedPort);
        squatter.Start();

        var restarted = await harness.ApplySucceedsAsync(harness.Spec("squatted", generation: 3));

        Assert.Equal(DeploymentStatus.Running, restarted.Observed.Status);
        Assert.NotEqual(reservedPort, restarted.Observed.Endpoint!.Port);
        Assert.Equal(restarted.Observed.Endpoint.Port, harness.Record("squatted")!.Port);
        using (var redis = harness.Connect(restarted.Observed.Endpoint))
        {
            Assert.Equal("with-me", (string?)await redis.GetDatabase().StringGetAsync("moved"));
        }
    }
}
