using Provisioner.Deployments;
using Provisioner.Messaging;
using Provisioner.Tests.TestSupport;
using Xunit.Abstractions;

namespace Provisioner.Tests;

public sealed class FailureTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_missing_installation_fails_with_a_message_that_says_what_to_do()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output, configure: settings =>
            settings["Catalog:Products:garnet:Versions:2.2.8:Home"] = "products/not-installed");

        var outcome = await harness.ApplyAsync(harness.Spec("uninstalled"));

        var failed = Assert.IsType<DeploymentFailed>(outcome);
        Assert.Equal("product-not-installed", failed.ErrorCode);
        Assert.Contains("Garnet 2.2.8 is not installed at", failed.ErrorMessage, StringComparison.Ordinal);
        Assert.Contains("dotnet build", failed.ErrorMessage, StringComparison.Ordinal);
        Assert.Equal(DeploymentStatus.Absent, failed.Observed.Status);
        Assert.False(Directory.Exists(harness.InstanceDirectory("uninstalled")));
    }

    [Fact]
    public async Task A_process_that_exits_during_startup_fails_with_its_exit_code_and_the_end_of_its_log()
    {
        // Garnet refuses an AOF buffer smaller than two AOF pages and exits at once.
        await using var harness = await ProvisionerHarness.StartAsync(output, configure: settings =>
        {
            const string size = "Catalog:Products:garnet:Sizes:broken:";
            settings[size + "MemoryMb"] = "256";
            foreach (var (name, value) in new Dictionary<string, string>
            {
                ["logMemory"] = "64m", ["pageSize"] = "1m", ["indexSize"] = "16m", ["aofMemory"] = "1m", ["aofPageSize"] = "2m",
                ["aofSizeLimit"] = "64m", ["bufferPoolBudget"] = "16m", ["networkBufferBudget"] = "32m",
            })
            {
                settings[size + "Settings:" + name] = value;
            }
        });

        var outcome = await harness.ApplyAsync(harness.Spec("crashes", size: "broken"));

        var failed = Assert.IsType<DeploymentFailed>(outcome);
        Assert.Equal("process-exited", failed.ErrorCode);
        Assert.Matches("exited with code [1-9][0-9]* during startup", failed.ErrorMessage);
        Assert.Contains("AofMemory", failed.ErrorMessage, StringComparison.Ordinal);
        Assert.DoesNotContain(harness.Password, failed.ErrorMessage, StringComparison.Ordinal);
        Assert.Equal(DeploymentStatus.Stopped, failed.Observed.Status);
    }

    [Fact]
    public async Task An_unknown_backend_fails_naming_the_backends_that_exist()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output);

        var outcome = await harness.ApplyAsync(harness.Spec("elsewhere") with { Backend = "kubernetes" });

        var failed = Assert.IsType<DeploymentFailed>(outcome);
        Assert.Equal("unknown-backend", failed.ErrorCode);
        Assert.Contains("local", failed.ErrorMessage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task No_free_port_in_the_range_fails_with_a_message_that_says_what_to_do()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output, portCount: 1);
        using var squatter = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, harness.FirstPort);
        squatter.Start();

        var outcome = await harness.ApplyAsync(harness.Spec("no-port", DeploymentGoal.Stopped));

        var failed = Assert.IsType<DeploymentFailed>(outcome);
        Assert.Equal("no-free-port", failed.ErrorCode);
        Assert.Contains("FirstPort/LastPort", failed.ErrorMessage, StringComparison.Ordinal);
    }
}
