using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Billing.Tests.Support;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Billing.Tests.Sla;

/// <summary>
/// A real Garnet instance on the Team plan (99.9 %, credits below 99.9 → 10 %, below 99 → 25 %, below 95 → 100 %) goes
/// through a scripted November. The billing clock is fake and the test probes when the script says (the grain's own timer
/// is slowed to an hour, as if the control plane were down in between); the reconcile loop is slowed to a day so a
/// killed process stays dead for exactly the minutes the script says.
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
            // The script probes each minute itself; the grain's own timer would probe whichever minute the fake clock shows.
            ["Billing:Sla:ProbeInterval"] = "01:00:00",
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
    public async Task Killed_minutes_are_bad_customer_stops_and_announced_maintenance_are_not_eligible_and_unprobed_minutes_are_bad_at_close()
    {
        // Minutes 0–9 serve. At minute 4 an SRE announces maintenance of this instance for minutes 10–14.
        await ProbeMinutesAsync(0, 5);
        await AnnounceAsync(instanceId: _instanceId, fromMinute: 10, toMinute: 15);
        await ProbeMinutesAsync(5, 10);

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
        Assert.Equal(15, (long)open["goodMinutes"]!);
        Assert.Equal(45, (long)open["badMinutes"]!);
        Assert.Equal(0, (long)open["unmeasuredMinutes"]!);
        Assert.Equal(5, (long)open["maintenanceMinutes"]!);
        Assert.Equal(25m, (decimal)open["uptimePercent"]!);
        Assert.Equal(95m, (decimal)open["tierBelowPercent"]!);
        Assert.Equal(100m, (decimal)open["creditPercent"]!);
        Assert.Equal(65, (long)open["probes"]!["measuredMinutes"]!);     // 0–59 and 70–74, maintenance too
        Assert.NotNull(open["probes"]!["medianP50Ms"]);

        await ProbeMinutesAsync(75, 83);

        // Nothing probes the instance after minute 82. While the month is open those minutes are not judged yet.
        _host.Clock.SetUtcNow(At(100, seconds: 30));
        var later = await _api.GetAsync($"/api/v1/tenants/{_tenantId}/instances/{_instanceId}/sla?month=2026-11");
        Assert.Equal((17, 17), ((long)later["unmeasuredMinutes"]!, (long)later["unmeasuredPendingMinutes"]!));  // 83–99
        Assert.Equal(30.7692m, (decimal)later["uptimePercent"]!);  // 20 good of 65 judged: 82 eligible less 17 pending

        // The month ends; its close runs on the billing clock five minutes later.
        _host.Clock.SetUtcNow(new DateTimeOffset(2026, 12, 1, 0, 6, 0, TimeSpan.Zero));
        var assessment = await WaitForAssessmentAsync();

        // From 10:00 on 3 November to 1 December: 27 days 14 hours = 39,720 minutes. No probe ever ended the gap after
        // minute 82, so at close its 39,637 minutes are unproven: nothing shows the instance served them.
        const long eligible = 39_720 - 10 - 5 - 3;
        Assert.Equal($"sla:{_instanceId}:2026-11", (string?)assessment["id"]);
        Assert.Equal(eligible, (long)assessment["eligibleMinutes"]!);
        Assert.Equal(20, (long)assessment["goodMinutes"]!);
        Assert.Equal(45, (long)assessment["badMinutes"]!);
        Assert.Equal((0, 39_637), ((long)assessment["unmeasuredProvenMinutes"]!, (long)assessment["unmeasuredUnprovenMinutes"]!));
        Assert.Equal(8, (long)assessment["maintenanceMinutes"]!);
        Assert.Equal(0.0503m, (decimal)assessment["uptimePercent"]!);  // 20 / 39,702, truncated
        Assert.Equal(99.9m, (decimal)assessment["targetPercent"]!);
        Assert.Equal(95m, (decimal)assessment["tierBelowPercent"]!);
        Assert.Equal(100m, (decimal)assessment["creditPercent"]!);
        // Running all month but the ten stopped minutes: 2,382,600 s of 'small' at 4 cents an hour.
        Assert.Equal(2_382_600, (long)assessment["runningSecondsBySize"]!["small"]!);
        Assert.Equal(2_647, (long)assessment["chargeMinorUnits"]!);
        Assert.Equal(2_647, (long)assessment["creditMinorUnits"]!);
        Assert.Equal("usd", (string?)assessment["currency"]);

        // Closing again (an admin, a retry) answers the stored assessment unchanged.
        using var reclose = await _api.SendAsync(HttpMethod.Post, "/api/v1/sla/months/2026-11:close");
        var again = (await ControlPlaneApi.ExpectAsync(reclose, HttpStatusCode.OK))["items"]!.AsArray().Single()!;
        Assert.Equal(assessment.ToJsonString(), again.ToJsonString());

        var closed = await _api.GetAsync($"/api/v1/tenants/{_tenantId}/sla?month=2026-11");
        Assert.Equal(0.0503m, (decimal)closed["uptimePercent"]!);
        Assert.Equal((20, 39_637), ((long)closed["goodMinutes"]!, (long)closed["unmeasuredUnprovenMinutes"]!));
        Assert.Equal(2_647, (long)closed["creditMinorUnits"]!);
        Assert.Equal("closed", (string?)closed["instances"]![0]!["status"]);

        var password = (string)(await _api.GetCredentialsAsync(_tenantId, _instanceId))["password"]!;
        Assert.Contains(_host.Logs.Lines, line => line.Contains("SLA probe of instance", StringComparison.Ordinal));
        Assert.DoesNotContain(_host.Logs.Lines, line => line.Contains(password, StringComparison.Ordinal));
    }

    /// <summary>
    /// Minutes nobody probed, through the real path: probes stop for a whole minute of billing's clock while as much real
    /// time passes, so the Garnet process's own uptime proves it served through the gap.
    /// </summary>
    [Fact]
    public async Task Minutes_the_same_garnet_process_ran_through_are_unmeasured_and_proven_and_a_gap_not_yet_ended_is_pending()
    {
        await ProbeAtAsync(At(0, seconds: 30));
        await ProbeAtAsync(At(1, seconds: 58));

        // Nothing probes minute 2. The next probe is 62.5 s later on billing's clock; at least that long passes for the process.
        var wait = Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromSeconds(63));
        await ProbeAtAsync(At(3).AddSeconds(0.5));
        Console.WriteLine($"Probes paused for {wait.Elapsed.TotalSeconds:F1} s of real time across a 62.5 s gap on billing's clock");

        // Then nothing probes minutes 4–6 either, and the month is still open.
        _host.Clock.SetUtcNow(At(7, seconds: 10));
        var sla = await _api.GetAsync($"/api/v1/tenants/{_tenantId}/instances/{_instanceId}/sla?month=2026-11");

        Assert.Equal("open", (string?)sla["status"]);
        Assert.Equal(7, (long)sla["eligibleMinutes"]!);
        Assert.Equal((3, 0), ((long)sla["goodMinutes"]!, (long)sla["badMinutes"]!));     // 0, 1 and 3
        Assert.Equal(4, (long)sla["unmeasuredMinutes"]!);
        Assert.Equal((1, 0, 3), ((long)sla["unmeasuredProvenMinutes"]!, (long)sla["unmeasuredUnprovenMinutes"]!, (long)sla["unmeasuredPendingMinutes"]!));
        Assert.Equal(100m, (decimal)sla["uptimePercent"]!);

        var tenant = await _api.GetAsync($"/api/v1/tenants/{_tenantId}/sla?month=2026-11");
        Assert.Equal((1, 3), ((long)tenant["unmeasuredProvenMinutes"]!, (long)tenant["unmeasuredPendingMinutes"]!));
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

            await ProbeAtAsync(At(minute, seconds: 30));
        }
    }

    private async Task ProbeAtAsync(DateTimeOffset at)
    {
        _host.Clock.SetUtcNow(at);
        await _host.Metering(_instanceId).MeasureAsync();
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
