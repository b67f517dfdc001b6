using System.Net;
using System.Text.Json.Nodes;
using Billing.Tests.Support;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Billing.Tests.Sla;

/// <summary>
/// A real Garnet instance on the Team plan (99.9 %, credits below 99.9 → 10 %, below 99 → 25 %, below 95 → 100 %) goes
/// through a scripted November. The billing clock is fake and the test probes once per fake minute; the reconcile loop
/// is slowed to a day so a killed process stays dead for exactly the minutes the script says.
/// </summary>
public sealed class ScriptedDowntimeTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 3, 10, 0, 0, TimeSpan.Zero);

    private readonly TestDirectory _directory = new();
    private readonly BillingHost _host;
    private ControlPlaneApi _api = null!;
    private string _tenantId = "";
    private string _instanceId = "";

    public ScriptedDowntimeTests() =>
        _host = new BillingHost(_directory, new FakeTimeProvider(T0), new RecordingLedger(), new Dictionary<string, string>
        {
            // The script kills and starts the instance itself; no reconcile, and so no liveness check, interferes.
            ["Reconcile:Interval"] = "1.00:00:00",
            ["Reconcile:LivenessTimeout"] = "1.00:00:00",
            // The script announces planned maintenance minutes before it starts.
            ["Billing:Sla:MaintenanceNotice"] = "00:00:00",
        });

    public async Task InitializeAsync()
    {
        _api = _host.CreateAdminApi();
        _tenantId = (string)(await _api.CreateTenantAsync("Acme Corp", "team"))["id"]!;
        _instanceId = (string)(await _api.CreateRunningInstanceAsync(_tenantId, "orders-cache"))["id"]!;
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        _directory.Dispose();
    }

    [Fact]
    public async Task Killed_minutes_are_bad_and_customer_stops_and_announced_maintenance_are_not_eligible()
    {
        // Minutes 0–4 serve. At minute 4 an SRE announces maintenance of this instance for minutes 10–14.
        await ProbeMinutesAsync(0, 5);
        await AnnounceAsync(instanceId: _instanceId, fromMinute: 10, toMinute: 15);

        // The process is killed at minute 10 and stays dead until minute 60: minutes 10–14 are maintenance, 15–59 are bad.
        HostedProcesses.KillUnder(_host.InstanceDirectory(_instanceId));
        await ProbeMinutesAsync(10, 60, kill: true);

        // The customer stops it at minute 60 and starts it at minute 70: those ten minutes are theirs.
        await ChangeAsync("stop", atMinute: 60);
        await ChangeAsync("start", atMinute: 70);
        await AnnounceAsync(instanceId: null, fromMinute: 80, toMinute: 83);
        await ProbeMinutesAsync(70, 75);

        _host.Clock.SetUtcNow(At(75, seconds: 30));
        var open = await _api.GetAsync($"/api/v1/tenants/{_tenantId}/instances/{_instanceId}/sla?month=2026-11");
        Assert.Equal("open", (string?)open["status"]);
        Assert.Equal(60, (long)open["eligibleMinutes"]!);      // 0–59 and 70–74, less maintenance 10–14
        Assert.Equal(45, (long)open["badMinutes"]!);
        Assert.Equal(5, (long)open["maintenanceMinutes"]!);
        Assert.Equal(25m, (decimal)open["uptimePercent"]!);
        Assert.Equal(95m, (decimal)open["tierBelowPercent"]!);
        Assert.Equal(100m, (decimal)open["creditPercent"]!);
        Assert.Equal(60, (long)open["probes"]!["measuredMinutes"]!);
        Assert.NotNull(open["probes"]!["medianP50Ms"]);

        await ProbeMinutesAsync(80, 83);

        // The month ends; its close runs on the billing clock five minutes later.
        _host.Clock.SetUtcNow(new DateTimeOffset(2026, 12, 1, 0, 6, 0, TimeSpan.Zero));
        var assessment = await WaitForAssessmentAsync();

        // From 10:00 on 3 November to 1 December: 27 days 14 hours = 39,720 minutes.
        const long eligible = 39_720 - 10 - 5 - 3;
        Assert.Equal($"sla:{_instanceId}:2026-11", (string?)assessment["id"]);
        Assert.Equal(eligible, (long)assessment["eligibleMinutes"]!);
        Assert.Equal(45, (long)assessment["badMinutes"]!);
        Assert.Equal(8, (long)assessment["maintenanceMinutes"]!);
        Assert.Equal(99.8866m, (decimal)assessment["uptimePercent"]!);  // 39,657 / 39,702, truncated
        Assert.Equal(99.9m, (decimal)assessment["targetPercent"]!);
        Assert.Equal(99.9m, (decimal)assessment["tierBelowPercent"]!);
        Assert.Equal(10m, (decimal)assessment["creditPercent"]!);
        // Running all month but the ten stopped minutes: 2,382,600 s of 'small' at 4 cents an hour.
        Assert.Equal(2_382_600, (long)assessment["runningSecondsBySize"]!["small"]!);
        Assert.Equal(2_647, (long)assessment["chargeMinorUnits"]!);
        Assert.Equal(265, (long)assessment["creditMinorUnits"]!);
        Assert.Equal("usd", (string?)assessment["currency"]);

        // Closing again (an admin, a retry) answers the stored assessment unchanged.
        using var reclose = await _api.SendAsync(HttpMethod.Post, "/api/v1/sla/months/2026-11:close");
        var again = (await ControlPlaneApi.ExpectAsync(reclose, HttpStatusCode.OK))["items"]!.AsArray().Single()!;
        Assert.Equal(assessment.ToJsonString(), again.ToJsonString());

        var closed = await _api.GetAsync($"/api/v1/tenants/{_tenantId}/sla?month=2026-11");
        Assert.Equal(99.8866m, (decimal)closed["uptimePercent"]!);
        Assert.Equal(265, (long)closed["creditMinorUnits"]!);
        Assert.Equal("closed", (string?)closed["instances"]![0]!["status"]);

        var password = (string)(await _api.GetCredentialsAsync(_tenantId, _instanceId))["password"]!;
        Assert.Contains(_host.Logs.Lines, line => line.Contains("SLA probe of instance", StringComparison.Ordinal));
        Assert.DoesNotContain(_host.Logs.Lines, line => line.Contains(password, StringComparison.Ordinal));
    }

    private static DateTimeOffset At(int minute, int seconds = 0) => T0.AddMinutes(minute).AddSeconds(seconds);

    /// <summary>One probe in the middle of each minute in [from, to); with <paramref name="kill"/>, the process is dead for each.</summary>
    private async Task ProbeMinutesAsync(int from, int to, bool kill = false)
    {
        for (var minute = from; minute < to; minute++)
        {
            if (kill)
            {
                HostedProcesses.KillUnder(_host.InstanceDirectory(_instanceId));
            }

            _host.Clock.SetUtcNow(At(minute, seconds: 30));
            await _host.Metering(_instanceId).MeasureAsync();
        }
    }

    private async Task AnnounceAsync(string? instanceId, int fromMinute, int toMinute)
    {
        using var response = await _api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{_tenantId}/maintenance-windows", new
        {
            startsAt = At(fromMinute),
            endsAt = At(toMinute),
            reason = "Storage firmware upgrade",
            instanceId,
        });
        await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.Created);
    }

    private async Task ChangeAsync(string action, int atMinute)
    {
        _host.Clock.SetUtcNow(At(atMinute));
        using var response = await _api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{_tenantId}/instances/{_instanceId}:{action}");
        var operation = await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.Accepted);
        var finished = await _api.WaitForOperationAsync(_tenantId, (string)operation["id"]!);
        Assert.Equal("succeeded", (string?)finished["status"]);
    }

    private async Task<JsonNode> WaitForAssessmentAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var items = (await _api.GetAsync("/api/v1/sla/assessments?month=2026-11"))["items"]!.AsArray();
            if (items.Count > 0)
            {
                return Assert.Single(items)!;
            }

            Assert.True(DateTime.UtcNow < deadline, "November was not closed by its timer.");
            await Task.Delay(100);
        }
    }
}
