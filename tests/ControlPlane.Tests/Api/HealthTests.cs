using ControlPlane.Tests.Support;

namespace ControlPlane.Tests.Api;

/// <summary>Health is observed, not assumed: slow answers are degraded, a dead process is unhealthy until repaired.</summary>
public sealed class HealthTests
{
    [Fact]
    public async Task An_instance_that_answers_slower_than_the_threshold_is_degraded_but_running()
    {
        await using var factory = new ControlPlaneFactory();
        factory.Settings["Reconcile:DegradedLatency"] = "00:00:00";
        var api = factory.CreateAdminApi();
        var tenantId = (string)(await api.CreateTenantAsync())["id"]!;

        var instance = await api.CreateRunningInstanceAsync(tenantId, "sluggish");

        Assert.Equal("Running", (string?)instance["state"]);
        Assert.Equal("degraded", (string?)instance["health"]);
        Assert.Contains("slower than 0 ms", (string?)instance["healthDetail"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_healthy_instance_reports_how_it_answered()
    {
        await using var factory = new ControlPlaneFactory();
        var api = factory.CreateAdminApi();
        var tenantId = (string)(await api.CreateTenantAsync())["id"]!;

        var instance = await api.CreateRunningInstanceAsync(tenantId, "brisk");

        Assert.Equal("healthy", (string?)instance["health"]);
        Assert.Contains("PING", (string?)instance["healthDetail"], StringComparison.Ordinal);
    }
}
