using System.Net;
using System.Text.Json.Nodes;
using Billing.Sla;
using Billing.Tests.Support;
using Billing.Usage;
using ControlPlane.Auditing;
using ControlPlane.Tenants;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Billing.Tests.Plans;

/// <summary>
/// A plan change mid-month: the API validates, audits and records it with billing's time; usage and the SLA month close
/// then price each minute under the plan in force. Team: small 4, medium 8 cents an hour, SLA 99.9 % (below 99.9 → 10 %,
/// below 99 → 25 %); enterprise: small 6, medium 12, SLA 99.95 % (below 99.95 → 10 %, below 99 → 25 %).
/// </summary>
public sealed class PlanChangeTests : IAsyncLifetime
{
    private static readonly DateTimeOffset MonthStart = new(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Change = new(2026, 11, 10, 13, 37, 0, TimeSpan.Zero);

    private readonly TestDirectory _directory = new();
    private readonly FakeTimeProvider _clock = new(MonthStart);
    private BillingHost _host;

    public PlanChangeTests() => _host = new BillingHost(_directory, _clock, ledger: null);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        _directory.Dispose();
    }

    [Fact]
    public async Task A_plan_change_is_validated_audited_and_kept_with_billings_time_and_a_retry_changes_nothing_again()
    {
        var admin = _host.CreateAdminApi();
        var tenantId = (string)(await admin.CreateTenantAsync("Mover", "team"))["id"]!;
        var created = await admin.GetAsync($"/api/v1/tenants/{tenantId}");
        var path = $"/api/v1/tenants/{tenantId}:changePlan";

        using (var unknown = await admin.SendAsync(HttpMethod.Post, path, new { plan = "gold" }))
        {
            var problem = await ControlPlaneApi.ExpectProblemAsync(unknown, HttpStatusCode.BadRequest, "validation-failed");
            Assert.Equal("Unknown plan 'gold'. Available: developer, enterprise, team.", (string?)problem["errors"]!["plan"]![0]);
        }

        using (var missing = await admin.SendAsync(HttpMethod.Post, path, new { }))
        {
            await ControlPlaneApi.ExpectProblemAsync(missing, HttpStatusCode.BadRequest, "validation-failed");
        }

        using (var same = await admin.SendAsync(HttpMethod.Post, path, new { plan = "team" }))
        {
            var answer = await ControlPlaneApi.ExpectAsync(same, HttpStatusCode.OK);
            Assert.False((bool)answer["changed"]!);
            Assert.Equal((string?)created["createdAt"], (string?)answer["planSince"]);
        }

        // Nobody else may move this tenant: another tenant's key sees a 404, like a tenant that does not exist.
        var otherTenant = (string)(await admin.CreateTenantAsync("Someone else", "team"))["id"]!;
        var other = await _host.CreateTenantApiAsync(otherTenant);
        using (var notTheirs = await other.SendAsync(HttpMethod.Post, path, new { plan = "enterprise" }))
        {
            await ControlPlaneApi.ExpectProblemAsync(notTheirs, HttpStatusCode.NotFound, "not-found");
        }

        _clock.SetUtcNow(Change);
        var owner = await _host.CreateTenantApiAsync(tenantId);
        using (var moved = await owner.SendAsync(HttpMethod.Post, path, new { plan = "enterprise" }, idempotencyKey: "move-1"))
        {
            var answer = await ControlPlaneApi.ExpectAsync(moved, HttpStatusCode.OK);
            Assert.Equal(("team", "enterprise", true), ((string?)answer["previousPlan"], (string?)answer["plan"], (bool)answer["changed"]!));
            Assert.Equal(Change, (DateTimeOffset)answer["planSince"]!);
        }

        // Someone moves it back; the first caller's retry (same key) answers what it did then and does not undo the move back.
        _clock.Advance(TimeSpan.FromMinutes(3));
        using (var back = await admin.SendAsync(HttpMethod.Post, path, new { plan = "team" }))
        {
            await ControlPlaneApi.ExpectAsync(back, HttpStatusCode.OK);
        }

        using (var retry = await owner.SendAsync(HttpMethod.Post, path, new { plan = "enterprise" }, idempotencyKey: "move-1"))
        {
            var answer = await ControlPlaneApi.ExpectAsync(retry, HttpStatusCode.OK);
            Assert.Equal(("enterprise", Change), ((string?)answer["plan"], (DateTimeOffset)answer["planSince"]!));
        }

        using (var reused = await owner.SendAsync(HttpMethod.Post, path, new { plan = "developer" }, idempotencyKey: "move-1"))
        {
            await ControlPlaneApi.ExpectProblemAsync(reused, HttpStatusCode.UnprocessableEntity, "idempotency-key-reused");
        }

        var tenant = await admin.GetAsync($"/api/v1/tenants/{tenantId}");
        Assert.Equal(("team", Change.AddMinutes(3)), ((string?)tenant["plan"], (DateTimeOffset)tenant["planSince"]!));
        // One record per request: the retry's repeats the change it replays, time and all; the reused key's says it was refused.
        var audit = (await _host.Services.GetRequiredService<AuditLog>().ReadAsync(tenantId, 50)).Where(entry => entry.Action == "tenant.plan.change").Reverse().ToList();
        Assert.Equal(
            [
                ("succeeded", "plan team unchanged"),
                ("succeeded", "plan team -> enterprise at 2026-11-10T13:37:00.0000000+00:00"),
                ("succeeded", "plan enterprise -> team at 2026-11-10T13:40:00.0000000+00:00"),
                ("succeeded", "plan team -> enterprise at 2026-11-10T13:37:00.0000000+00:00"),
                ("rejected:idempotency-key-reused", "Idempotency-Key 'move-1' was already used for a different request. Use a new key for a new request."),
            ],
            audit.Select(entry => (entry.Outcome, entry.Details)));
        Assert.All(audit, entry => Assert.Equal(tenantId, entry.Target));
        Assert.Contains("tenant key", audit[1].Actor, StringComparison.Ordinal);

        // The history is the tenant's state: it survives a restart, each change with its time.
        await _host.DisposeAsync();
        _host = new BillingHost(_directory, _clock, ledger: null);
        var history = await _host.Grains.GetGrain<ITenantGrain>(tenantId).GetPlanHistoryAsync();
        Assert.Equal(
            [("team", "enterprise", Change), ("enterprise", "team", Change.AddMinutes(3))],
            history!.Changes.Select(change => (change.FromPlan, change.ToPlan, change.At)));
    }

    [Fact]
    public async Task A_move_to_a_plan_with_fewer_instances_than_the_tenant_has_is_refused_with_the_quota_problem_and_audited()
    {
        await _host.DisposeAsync();
        _host = new BillingHost(_directory, _clock, ledger: null, new Dictionary<string, string> { ["Plans:Definitions:developer:MaxInstances"] = "0" });
        var admin = _host.CreateAdminApi();
        var tenantId = (string)(await admin.CreateTenantAsync("Busy", "team"))["id"]!;
        await admin.CreateInstanceAsync(tenantId, "cache");

        using var refused = await admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}:changePlan", new { plan = "developer" });

        var problem = await ControlPlaneApi.ExpectProblemAsync(refused, HttpStatusCode.Forbidden, "quota-exceeded");
        Assert.Equal("The 'developer' plan allows 0 instance(s) and the tenant has 1. Delete instances first, or choose a larger plan.", (string?)problem["detail"]);
        Assert.Equal("team", (string?)(await admin.GetAsync($"/api/v1/tenants/{tenantId}"))["plan"]);
        var audit = await _host.Services.GetRequiredService<AuditLog>().ReadAsync(tenantId, 20);
        Assert.Equal("rejected:quota-exceeded", Assert.Single(audit, entry => entry.Action == "tenant.plan.change").Outcome);
        Assert.Empty((await _host.Grains.GetGrain<ITenantGrain>(tenantId).GetPlanHistoryAsync())!.Changes);
    }

    [Fact]
    public async Task Usage_in_a_month_with_a_change_on_the_10th_at_13_37_is_priced_minute_exactly_under_each_plan()
    {
        var admin = _host.CreateAdminApi();
        var tenantId = (string)(await admin.CreateTenantAsync("Mover", "team"))["id"]!;
        _clock.SetUtcNow(Change);
        await ChangePlanAsync(admin, tenantId, "enterprise");
        // small runs 12:00–15:00 (hours 12, 13, 14); medium runs the 13:00 hour, the one the change splits 37/23.
        _clock.SetUtcNow(Change.Date.AddHours(15));
        await _host.RunAsync(tenantId, "ins-plan-small", "small", Change.Date.AddHours(12), Change.Date.AddHours(15));
        await _host.RunAsync(tenantId, "ins-plan-medium", "medium", Change.Date.AddHours(13), Change.Date.AddHours(14));
        _clock.SetUtcNow(Change.Date.AddHours(16).AddMinutes(5));
        await _host.Metering("ins-plan-small").MeasureAsync();
        await _host.Metering("ins-plan-medium").MeasureAsync();

        var usage = await admin.GetAsync($"/api/v1/tenants/{tenantId}/usage?month=2026-11");

        // small: team 3600 + 3600 × 37/60 = 5820 s × 4 / 3600 = 6.47 → 6; enterprise 3600 × 23/60 + 3600 = 4980 s × 6 / 3600 = 8.3 → 8.
        // medium: team 3600 × 37/60 = 2220 s × 8 / 3600 = 4.93 → 5; enterprise 1380 s × 12 / 3600 = 4.6 → 5.
        var instances = usage["instances"]!.AsArray();
        Assert.Equal(["ins-plan-medium", "ins-plan-small"], instances.Select(i => (string?)i!["instanceId"]));
        Assert.Equal([("team", 5L), ("enterprise", 5L)], Charges(instances[0]!["planCharges"]!));
        Assert.Equal([("team", 6L), ("enterprise", 8L)], Charges(instances[1]!["planCharges"]!));
        Assert.Equal((10, 14), ((long)instances[0]!["estimatedChargeMinorUnits"]!, (long)instances[1]!["estimatedChargeMinorUnits"]!));
        var periods = usage["planPeriods"]!.AsArray();
        Assert.Equal([("team", 11L), ("enterprise", 13L)], Charges(periods));
        Assert.Equal(
            [(MonthStart, Change), (Change, MonthStart.AddMonths(1))],
            periods.Select(p => ((DateTimeOffset)p!["from"]!, (DateTimeOffset)p!["to"]!)));
        Assert.Equal(24, (long)usage["estimatedChargeMinorUnits"]!);
        Assert.Equal("enterprise", (string?)usage["plan"]);
        Assert.Equal(3 * 3600, (long)instances[1]!["meters"]!.AsArray().Single(m => (string?)m!["meter"] == UsageMeters.InstanceSeconds("small"))!["quantity"]!);
    }

    [Fact]
    public async Task Month_close_assesses_each_plans_minutes_against_its_own_sla_and_credits_its_own_charge()
    {
        var admin = _host.CreateAdminApi();
        var tenantId = (string)(await admin.CreateTenantAsync("Mover", "team"))["id"]!;
        const string instanceId = "ins-plan-sla";
        await _host.Metering(instanceId).ObserveLifecycleAsync(new InstanceLifecycleNotice { TenantId = tenantId, State = MeteredState.Running, Size = "small", ChangedAt = MonthStart });
        _clock.SetUtcNow(Change);
        await ChangePlanAsync(admin, tenantId, "enterprise");
        // 200 bad minutes under team (from day 2), 20 under enterprise (from day 20).
        var probes = _host.Services.GetRequiredService<ProbeMinutes>();
        foreach (var minute in Enumerable.Range(0, 200).Select(m => MonthStart.AddDays(1).AddMinutes(m))
            .Concat(Enumerable.Range(0, 20).Select(m => MonthStart.AddDays(19).AddMinutes(m))))
        {
            var failed = new ProbeMinute(ProbeMinute.MinuteOf(minute));
            failed.Add(answered: false, TimeSpan.Zero);
            await probes.SaveAsync(instanceId, tenantId, failed);
        }

        // Answered probes of one process around each bad stretch, at the plan change and at both ends of the month: the
        // minutes between them were not probed, but that process served throughout, so they count as available.
        var startedAt = MonthStart.AddDays(-1);
        foreach (var minute in new[] { MonthStart, MonthStart.AddDays(1).AddMinutes(-1), MonthStart.AddDays(1).AddMinutes(200), Change.AddMinutes(1),
            MonthStart.AddDays(19).AddMinutes(-1), MonthStart.AddDays(19).AddMinutes(20), MonthStart.AddMonths(1).AddMinutes(-1) })
        {
            var seenAt = minute.AddSeconds(30);
            var answered = new ProbeMinute(ProbeMinute.MinuteOf(minute)) { Run = new ProcessSighting("run-1", (long)(seenAt - startedAt).TotalSeconds, seenAt) };
            answered.Add(answered: true, TimeSpan.FromMilliseconds(1));
            await probes.SaveAsync(instanceId, tenantId, answered);
        }

        _clock.SetUtcNow(MonthStart.AddMonths(1).AddMinutes(1));
        using var closed = await admin.SendAsync(HttpMethod.Post, "/api/v1/sla/months/2026-11:close");
        var assessment = Assert.Single((await ControlPlaneApi.ExpectAsync(closed, HttpStatusCode.OK))["items"]!.AsArray(), a => (string?)a!["instanceId"] == instanceId)!;

        // Team: 9 d 13 h 37 min = 13,777 minutes, 200 bad: 98.5483 % < 99 → 25 % of 13,777 min × 4 / 60 = 918.47 → 918: 229.5 → 230.
        // Enterprise: 43,200 − 13,777 = 29,423 minutes, 20 bad: 99.9320 % < 99.95 → 10 % of 29,423 × 6 / 60 = 2,942.3 → 2,942: 294.
        var periods = assessment["planPeriods"]!.AsArray();
        Assert.Equal(
            [("team", 13_777L, 200L, 98.5483m, 25m, 918L, 230L), ("enterprise", 29_423L, 20L, 99.9320m, 10m, 2_942L, 294L)],
            periods.Select(p => ((string)p!["plan"]!, (long)p["eligibleMinutes"]!, (long)p["badMinutes"]!, (decimal)p["uptimePercent"]!,
                (decimal)p["creditPercent"]!, (long)p["chargeMinorUnits"]!, (long)p["creditMinorUnits"]!)));
        Assert.Equal((43_200L, 220L, 99.4907m), ((long)assessment["eligibleMinutes"]!, (long)assessment["badMinutes"]!, (decimal)assessment["uptimePercent"]!));
        Assert.Equal((3_860L, 524L, "enterprise"), ((long)assessment["chargeMinorUnits"]!, (long)assessment["creditMinorUnits"]!, (string?)assessment["plan"]));

        // Stored once: the tenant's report of the closed month reads the same periods back.
        var report = Assert.Single((await admin.GetAsync($"/api/v1/tenants/{tenantId}/sla?month=2026-11"))["instances"]!.AsArray())!;
        Assert.Equal(("closed", 524L), ((string?)report["status"], (long)report["creditMinorUnits"]!));
        Assert.Equal(periods.ToJsonString(), report["planPeriods"]!.ToJsonString());
    }

    private static async Task ChangePlanAsync(ControlPlaneApi api, string tenantId, string plan)
    {
        using var response = await api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}:changePlan", new { plan });
        Assert.True((bool)(await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.OK))["changed"]!);
    }

    private static IEnumerable<(string?, long)> Charges(JsonNode periods) =>
        periods.AsArray().Select(p => ((string?)p!["plan"], (long)p["estimatedChargeMinorUnits"]!));
}
