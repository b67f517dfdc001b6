using Provisioner.Deployments;
using Provisioner.Messaging;
using Provisioner.Tests.TestSupport;
using Xunit.Abstractions;

namespace Provisioner.Tests;

public sealed class ConcurrentCreateTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Twenty_concurrent_creates_all_become_healthy_on_distinct_ports()
    {
        await using var harness = await ProvisionerHarness.StartAsync(output, portCount: 40);
        var specs = Enumerable.Range(1, 20).Select(i => harness.Spec($"burst-{i:00}")).ToList();

        foreach (var spec in specs)
        {
            await harness.Bus.SendAsync(ProvisionerHarness.Command(spec));
        }

        var outcomes = await Task.WhenAll(specs.Select(spec =>
            harness.Events.WaitForAsync<ProvisioningEvent>(e => e.InstanceId == spec.InstanceId && e is DeploymentApplied or DeploymentFailed)));

        var applied = outcomes.Select(outcome => outcome as DeploymentApplied ?? throw new Xunit.Sdk.XunitException($"Expected DeploymentApplied, got {outcome}")).ToList();
        Assert.All(applied, a => Assert.Equal(DeploymentHealth.Healthy, a.Observed.Health));
        Assert.Equal(20, applied.Select(a => a.Observed.Endpoint!.Port).Distinct().Count());
        Assert.All(specs, spec => Assert.Single(harness.ProcessesServing(spec.InstanceId)));
    }
}
