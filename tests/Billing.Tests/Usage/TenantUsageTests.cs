using System.Net;
using System.Text.Json.Nodes;
using Billing.Tests.Support;
using Billing.Usage;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Billing.Tests.Usage;

/// <summary>The usage a customer sees: the real ledger's hours per instance and meter, priced under the tenant's plan, with the SLA credit the SLA report shows.</summary>
public sealed class TenantUsageTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Ten = new(2026, 11, 3, 10, 0, 0, TimeSpan.Zero);

    private readonly TestDirectory _directory = new();
    private readonly FakeTimeProvider _clock = new(Ten.AddMinutes(90));
    private readonly BillingHost _host;

    public TenantUsageTests() => _host = new BillingHost(_directory, _clock, ledger: null);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        _directory.Dispose();
    }

    [Fact]
    public async Task Usage_shows_each_instances_ledger_hours_priced_under_the_plan_with_the_sla_credit_and_refuses_a_bad_month()
    {
        var api = _host.CreateAdminApi();
        var tenantId = (string)(await api.CreateTenantAsync("Usage", "team"))["id"]!;
        var other = (string)(await api.CreateTenantAsync("Someone else", "team"))["id"]!;
        // Team prices: small 4, medium 8 cents an hour. One instance small for 90 minutes, one medium for 45.
        await _host.RunAsync(tenantId, "ins-usage-small", "small", Ten, Ten.AddMinutes(90));
        await _host.RunAsync(tenantId, "ins-usage-medium", "medium", Ten.AddMinutes(15), Ten.AddMinutes(60));
        await _host.RunAsync(other, "ins-usage-other", "large", Ten, Ten.AddMinutes(60));
        _clock.SetUtcNow(Ten.AddHours(2).AddMinutes(5));
        await _host.Metering("ins-usage-small").MeasureAsync();
        await _host.Metering("ins-usage-medium").MeasureAsync();

        var usage = await api.GetAsync($"/api/v1/tenants/{tenantId}/usage?month=2026-11");

        var instances = usage["instances"]!.AsArray();
        Assert.Equal(["ins-usage-medium", "ins-usage-small"], instances.Select(i => (string?)i!["instanceId"]));
        Assert.Equal(5_400, Quantity(instances[1]!, UsageMeters.InstanceSeconds("small")));
        Assert.Equal(2_700, Quantity(instances[0]!, UsageMeters.InstanceSeconds("medium")));
        Assert.Equal(6, (long)instances[1]!["estimatedChargeMinorUnits"]!);   // 1.5 h × 4
        Assert.Equal(6, (long)instances[0]!["estimatedChargeMinorUnits"]!);   // 0.75 h × 8
        Assert.Equal(12, (long)usage["estimatedChargeMinorUnits"]!);
        Assert.Equal(("team", "usd"), ((string?)usage["plan"], (string?)usage["currency"]));
        var sla = await api.GetAsync($"/api/v1/tenants/{tenantId}/sla?month=2026-11");
        Assert.Equal((long)sla["creditMinorUnits"]!, (long)usage["slaCreditMinorUnits"]!);
        Assert.Equal((long)usage["estimatedChargeMinorUnits"]! - (long)usage["slaCreditMinorUnits"]!, (long)usage["netMinorUnits"]!);
        Assert.DoesNotContain(instances, i => (string?)i!["instanceId"] == "ins-usage-other");

        using var badMonth = await api.Http.GetAsync($"/api/v1/tenants/{tenantId}/usage?month=11-2026");
        using var future = await api.Http.GetAsync($"/api/v1/tenants/{tenantId}/usage?month=2027-01");
        var tenantApi = await _host.CreateTenantApiAsync(other);
        using var notTheirs = await tenantApi.Http.GetAsync($"/api/v1/tenants/{tenantId}/usage");
        await ControlPlaneApi.ExpectProblemAsync(badMonth, HttpStatusCode.BadRequest);
        await ControlPlaneApi.ExpectProblemAsync(future, HttpStatusCode.BadRequest);
        await ControlPlaneApi.ExpectProblemAsync(notTheirs, HttpStatusCode.NotFound);
    }

    private static long Quantity(JsonNode instance, string meter) =>
        (long)instance["meters"]!.AsArray().Single(m => (string?)m!["meter"] == meter)!["quantity"]!;
}
