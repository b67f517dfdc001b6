using System.Net;
using Billing.Tests.Support;
using ControlPlane.Auditing;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Billing.Tests.Sla;

/// <summary>One control plane with two tenants, one instance in the first, shared by <see cref="SlaApiTests"/>.</summary>
public sealed class TwoTenants : IAsyncLifetime
{
    public static readonly DateTimeOffset Now = new(2026, 11, 3, 10, 0, 0, TimeSpan.Zero);

    private readonly TestDirectory _directory = new();

    public TwoTenants() => Host = new BillingHost(_directory, new FakeTimeProvider(Now), new RecordingLedger());

    public BillingHost Host { get; }

    public ControlPlaneApi Admin { get; private set; } = null!;

    public string TenantA { get; private set; } = "";

    public string TenantB { get; private set; } = "";

    public string InstanceA { get; private set; } = "";

    public async Task InitializeAsync()
    {
        Admin = Host.CreateAdminApi();
        TenantA = (string)(await Admin.CreateTenantAsync("Tenant A", "team"))["id"]!;
        TenantB = (string)(await Admin.CreateTenantAsync("Tenant B", "enterprise"))["id"]!;
        InstanceA = (string)(await Admin.CreateRunningInstanceAsync(TenantA, "a-cache"))["id"]!;
    }

    public async Task DisposeAsync()
    {
        await Host.DisposeAsync();
        _directory.Dispose();
    }
}

/// <summary>The SLA API refuses bad input with problem+json, hides other tenants' SLA behind 404 and audits announcements.</summary>
public sealed class SlaApiTests(TwoTenants fixture) : IClassFixture<TwoTenants>
{
    private static readonly DateTimeOffset Now = TwoTenants.Now;

    private readonly BillingHost _host = fixture.Host;
    private readonly ControlPlaneApi _admin = fixture.Admin;
    private readonly string _tenantA = fixture.TenantA;
    private readonly string _tenantB = fixture.TenantB;
    private readonly string _instanceA = fixture.InstanceA;

    [Fact]
    public async Task Another_tenants_sla_answers_404_like_one_that_does_not_exist()
    {
        var tenantB = await _host.CreateTenantApiAsync(_tenantB);
        foreach (var path in new[]
        {
            $"/api/v1/tenants/{_tenantA}/instances/{_instanceA}/sla",
            $"/api/v1/tenants/{_tenantA}/sla",
            $"/api/v1/tenants/{_tenantA}/sla/assessments",
            $"/api/v1/tenants/{_tenantB}/instances/{_instanceA}/sla",
            $"/api/v1/tenants/{_tenantB}/instances/ins-0000000000000000/sla",
        })
        {
            using var response = await tenantB.Http.GetAsync(path);
            await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.NotFound, "not-found");
        }

        var own = await tenantB.GetAsync($"/api/v1/tenants/{_tenantB}/sla?month=2026-11");
        Assert.Empty(own["instances"]!.AsArray());

        var tenantA = await _host.CreateTenantApiAsync(_tenantA);
        var report = await tenantA.GetAsync($"/api/v1/tenants/{_tenantA}/instances/{_instanceA}/sla");
        Assert.Equal("2026-11", (string?)report["month"]);
        Assert.Equal(99.9m, (decimal)report["targetPercent"]!);
    }

    [Theory]
    [InlineData("2026-13")]
    [InlineData("26-11")]
    [InlineData("2026-1")]
    [InlineData("november")]
    [InlineData("1999-12")]
    [InlineData("2026-12")]
    public async Task A_month_that_is_malformed_or_not_begun_is_a_validation_problem(string month)
    {
        foreach (var path in new[]
        {
            $"/api/v1/tenants/{_tenantA}/instances/{_instanceA}/sla?month={month}",
            $"/api/v1/tenants/{_tenantA}/sla?month={month}",
            $"/api/v1/sla/assessments?month={month}",
        })
        {
            using var response = await _admin.Http.GetAsync(path);
            var problem = await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "validation-failed");
            Assert.NotNull(problem["errors"]!["month"]);
        }
    }

    [Fact]
    public async Task Closing_a_month_that_has_not_ended_is_a_conflict()
    {
        using var open = await _admin.SendAsync(HttpMethod.Post, "/api/v1/sla/months/2026-11:close");
        await ControlPlaneApi.ExpectProblemAsync(open, HttpStatusCode.Conflict, "month-not-ended");

        using var malformed = await _admin.SendAsync(HttpMethod.Post, "/api/v1/sla/months/2026-xx:close");
        await ControlPlaneApi.ExpectProblemAsync(malformed, HttpStatusCode.BadRequest, "validation-failed");

        var tenantA = await _host.CreateTenantApiAsync(_tenantA);
        using var forbidden = await tenantA.SendAsync(HttpMethod.Post, "/api/v1/sla/months/2026-10:close");
        await ControlPlaneApi.ExpectProblemAsync(forbidden, HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task Maintenance_is_validated_announced_by_platform_admins_only_and_audited()
    {
        var path = $"/api/v1/tenants/{_tenantA}/maintenance-windows";
        async Task ExpectInvalidAsync(object body, params string[] fields)
        {
            using var response = await _admin.SendAsync(HttpMethod.Post, path, body);
            var problem = await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "validation-failed");
            foreach (var field in fields)
            {
                Assert.True(problem["errors"]![field] is not null, problem.ToJsonString());
            }
        }

        await ExpectInvalidAsync(new { }, "startsAt", "endsAt", "reason");
        await ExpectInvalidAsync(new { startsAt = Now.AddHours(-1), endsAt = Now.AddHours(1), reason = "late" }, "startsAt");
        await ExpectInvalidAsync(new { startsAt = Now.AddHours(2), endsAt = Now.AddHours(1), reason = "backwards" }, "endsAt");
        await ExpectInvalidAsync(new { startsAt = Now.AddHours(1), endsAt = Now.AddDays(2), reason = "too long" }, "endsAt");
        await ExpectInvalidAsync(new { startsAt = Now.AddHours(1), endsAt = Now.AddHours(2), reason = "  " }, "reason");
        await ExpectInvalidAsync(new { startsAt = Now.AddHours(1), endsAt = Now.AddHours(2), reason = "elsewhere", instanceId = "ins-0000000000000000" }, "instanceId");

        using (var unknownField = await _admin.SendAsync(HttpMethod.Post, path, new { startsAt = Now.AddHours(1), endsAt = Now.AddHours(2), reason = "x", scope = "all" }))
        {
            await ControlPlaneApi.ExpectProblemAsync(unknownField, HttpStatusCode.BadRequest, "malformed-request");
        }

        var tenantA = await _host.CreateTenantApiAsync(_tenantA);
        using (var byCustomer = await tenantA.SendAsync(HttpMethod.Post, path, new { startsAt = Now.AddHours(1), endsAt = Now.AddHours(2), reason = "mine" }))
        {
            await ControlPlaneApi.ExpectProblemAsync(byCustomer, HttpStatusCode.Forbidden, "forbidden");
        }

        using var announced = await _admin.SendAsync(HttpMethod.Post, path, new
        {
            startsAt = Now.AddDays(4),
            endsAt = Now.AddDays(4).AddHours(1),
            reason = "Kernel upgrade",
            instanceId = _instanceA,
        });
        var window = await ControlPlaneApi.ExpectAsync(announced, HttpStatusCode.Created);
        Assert.Equal(_instanceA, (string?)window["instanceId"]);

        // Customers see what was announced for them; the announcement is attributed to the admin's key.
        var seen = await tenantA.GetAsync($"{path}?month=2026-11");
        Assert.Equal((string?)window["id"], (string?)Assert.Single(seen["items"]!.AsArray())!["id"]);
        var audit = await _host.Services.GetRequiredService<AuditLog>().ReadAsync(_tenantA, 20);
        var entry = Assert.Single(audit, record => record.Action == "maintenance.announce");
        Assert.Equal("accepted", entry.Outcome);
        Assert.Equal((string?)window["id"], entry.Target);
        Assert.StartsWith("apikey:", entry.Actor, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Maintenance_policy_needs_notice_for_planned_work_refuses_overlaps_and_the_monthly_cap_and_a_withdrawal_is_audited()
    {
        var path = $"/api/v1/tenants/{_tenantA}/maintenance-windows";
        async Task<HttpResponseMessage> AnnounceAsync(DateTimeOffset startsAt, double hours, string? kind = null, string? instanceId = null) =>
            await _admin.SendAsync(HttpMethod.Post, path, new { startsAt, endsAt = startsAt.AddHours(hours), reason = "Storage firmware", instanceId, kind });

        using (var shortNotice = await AnnounceAsync(Now.AddHours(71), 1))
        {
            var problem = await ControlPlaneApi.ExpectProblemAsync(shortNotice, HttpStatusCode.BadRequest, "validation-failed");
            Assert.Contains("72 hours", (string?)problem["errors"]!["startsAt"]![0], StringComparison.Ordinal);
        }

        using (var unknownKind = await AnnounceAsync(Now.AddDays(4), 1, kind: "whenever"))
        {
            await ControlPlaneApi.ExpectProblemAsync(unknownKind, HttpStatusCode.BadRequest, "validation-failed");
        }

        using var emergency = await AnnounceAsync(Now.AddMinutes(5), 1, kind: "emergency", instanceId: _instanceA);
        Assert.Equal("emergency", (string?)(await ControlPlaneApi.ExpectAsync(emergency, HttpStatusCode.Created))["kind"]);

        var monday = Now.AddDays(5);
        using var planned = await AnnounceAsync(monday, 20);
        var plannedWindow = await ControlPlaneApi.ExpectAsync(planned, HttpStatusCode.Created);
        using (var overlapping = await AnnounceAsync(monday.AddHours(19), 2, instanceId: _instanceA))
        {
            var problem = await ControlPlaneApi.ExpectProblemAsync(overlapping, HttpStatusCode.Conflict, "maintenance-overlaps");
            Assert.Contains((string)plannedWindow["id"]!, (string?)problem["detail"], StringComparison.Ordinal);
        }

        // 20 h tenant-wide plus 6 h for one instance is 26 h of that instance's month: over the 24 h cap.
        using (var overCap = await AnnounceAsync(monday.AddDays(1), 6, instanceId: _instanceA))
        {
            var problem = await ControlPlaneApi.ExpectProblemAsync(overCap, HttpStatusCode.BadRequest, "validation-failed");
            Assert.Contains("monthly cap of 24 hours", (string?)problem["errors"]!["endsAt"]![0], StringComparison.Ordinal);
        }

        using (var withdraw = await _admin.SendAsync(HttpMethod.Delete, $"{path}/{plannedWindow["id"]}"))
        {
            var withdrawn = await ControlPlaneApi.ExpectAsync(withdraw, HttpStatusCode.OK);
            Assert.NotNull(withdrawn["withdrawnAt"]);
            Assert.StartsWith("apikey:", (string?)withdrawn["withdrawnBy"], StringComparison.Ordinal);
        }

        // Withdrawn, it neither overlaps nor counts toward the cap.
        using (var nowFits = await AnnounceAsync(monday.AddDays(1), 6, instanceId: _instanceA))
        {
            await ControlPlaneApi.ExpectAsync(nowFits, HttpStatusCode.Created);
        }

        using (var byCustomer = await (await _host.CreateTenantApiAsync(_tenantA)).SendAsync(HttpMethod.Delete, $"{path}/{plannedWindow["id"]}"))
        {
            await ControlPlaneApi.ExpectProblemAsync(byCustomer, HttpStatusCode.Forbidden, "forbidden");
        }

        using (var unknown = await _admin.SendAsync(HttpMethod.Delete, $"{path}/mw-0000000000000000"))
        {
            await ControlPlaneApi.ExpectProblemAsync(unknown, HttpStatusCode.NotFound);
        }

        var audit = await _host.Services.GetRequiredService<AuditLog>().ReadAsync(_tenantA, 50);
        var entry = Assert.Single(audit, record => record.Action == "maintenance.withdraw" && record.Outcome == "accepted");
        Assert.Equal((string?)plannedWindow["id"], entry.Target);
        var listed = (await _admin.GetAsync($"{path}?month=2026-11"))["items"]!.AsArray();
        Assert.Equal((string?)plannedWindow["id"], (string?)Assert.Single(listed, window => window!["withdrawnAt"] is not null)!["id"]);
        Assert.Single(listed, window => (string?)window!["kind"] == "emergency");
    }
}
