using Billing.Sla;
using Billing.Usage;
using ControlPlane.Persistence;
using ControlPlane.Tests.Support;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using TestServers;

namespace Billing.Tests.Sla;

/// <summary>The same SLA and lifecycle storage on SQLite (embedded) and on a real PostgreSQL (cluster).</summary>
public sealed class SlaStorageTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly Migration[] s_migrations = [LifecycleLog.Migration, ProbeMinutes.Migration, MaintenanceWindows.Migration, MaintenanceWindows.PolicyMigration, SlaAssessments.Migration, SlaAssessments.PlanPeriodsMigration];

    private readonly TestDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task An_assessment_is_stored_once_and_never_changed(DatabaseProvider provider)
    {
        var assessments = new SlaAssessments(await DatabaseAsync(provider));
        var first = Assessment(uptime: 99.8866m, credit: 265);

        var stored = await assessments.InsertOnceAsync(first);
        var again = await assessments.InsertOnceAsync(first with { UptimePercent = 100m, CreditMinorUnits = 0, AssessedAt = first.AssessedAt.AddDays(1) });

        Assert.Equal(first.UptimePercent, stored.UptimePercent);
        Assert.Equal(99.8866m, again.UptimePercent);
        Assert.Equal(265, again.CreditMinorUnits);
        Assert.Equal(first.AssessedAt, again.AssessedAt);
        Assert.Equal(2_382_600, again.RunningSecondsBySize["small"]);
        Assert.Equal(99.9m, again.TierBelowPercent);
        Assert.Single(await assessments.ListAsync(new SlaMonth(2026, 11), "tnt-a"));
        Assert.Empty(await assessments.ListAsync(new SlaMonth(2026, 11), "tnt-b"));
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task Lifecycle_minutes_and_windows_round_trip(DatabaseProvider provider)
    {
        var database = await DatabaseAsync(provider);
        var lifecycle = new LifecycleLog(database);
        await lifecycle.AppendAsync("ins-a", "tnt-a", 1, new LifecycleChange(Start, MeteredState.Running, "small"));
        await lifecycle.AppendAsync("ins-a", "tnt-a", 1, new LifecycleChange(Start.AddHours(1), MeteredState.Stopped, "small"));
        await lifecycle.AppendAsync("ins-gone", "tnt-a", 1, new LifecycleChange(Start.AddDays(-40), MeteredState.Running, "small"));
        await lifecycle.AppendAsync("ins-gone", "tnt-a", 2, new LifecycleChange(Start.AddDays(-35), MeteredState.Deleted, "small"));
        var timeline = Assert.Single(await lifecycle.ReadExistingAsync(Start, Start.AddMonths(1), "tnt-a"));
        Assert.Equal(new LifecycleChange(Start, MeteredState.Running, "small"), Assert.Single(timeline.Changes));

        var minutes = new ProbeMinutes(database);
        var minute = new ProbeMinute(ProbeMinute.MinuteOf(Start.AddMinutes(5)));
        minute.Add(answered: true, TimeSpan.FromMilliseconds(1.5));
        await minutes.SaveAsync("ins-a", "tnt-a", minute);
        minute.Add(answered: false, TimeSpan.FromSeconds(2));
        minute.Add(answered: false, TimeSpan.FromSeconds(2));
        await minutes.SaveAsync("ins-a", "tnt-a", minute);
        var read = await minutes.ReadAsync("ins-a", minute.Minute);
        Assert.Equal((3, 2, 1.5), (read!.Probes, read.Failed, read.LatenciesMs.Single()));
        Assert.Equal([minute.Minute], await minutes.BadMinutesAsync("ins-a", Start, Start.AddHours(1)));
        Assert.Equal(new ProbeSummary(1, 1.5, 1.5), await minutes.SummarizeAsync("ins-a", Start, Start.AddHours(1)));

        var windows = new MaintenanceWindows(database);
        await windows.AnnounceAsync(Window("mw-tenant", instanceId: null));
        await windows.AnnounceAsync(Window("mw-a", "ins-a"));
        await windows.AnnounceAsync(Window("mw-b", "ins-b"));
        var forA = await windows.ListAsync("tnt-a", "ins-a", Start, Start.AddDays(1));
        Assert.Equal(["mw-a", "mw-tenant"], forA.Select(window => window.Id).Order(StringComparer.Ordinal));
        Assert.Equal(3, (await windows.ListAsync("tnt-a", instanceId: null, Start, Start.AddDays(1))).Count);
        Assert.Empty(await windows.ListAsync("tnt-a", "ins-a", Start.AddDays(1), Start.AddDays(2)));
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task Only_planned_maintenance_that_was_not_withdrawn_excuses_minutes(DatabaseProvider provider)
    {
        var windows = new MaintenanceWindows(await DatabaseAsync(provider));
        await windows.AnnounceAsync(Window("mw-planned", "ins-a"));
        await windows.AnnounceAsync(Window("mw-emergency", "ins-a") with { Kind = MaintenanceKind.Emergency });
        await windows.AnnounceAsync(Window("mw-withdrawn", instanceId: null));

        var withdrawn = await windows.WithdrawAsync("tnt-a", "mw-withdrawn", "apikey:sre", Start.AddHours(1));
        var again = await windows.WithdrawAsync("tnt-a", "mw-withdrawn", "apikey:other", Start.AddHours(2));

        Assert.Equal((Start.AddHours(1), "apikey:sre"), (withdrawn!.WithdrawnAt, withdrawn.WithdrawnBy));
        Assert.Equal(withdrawn, again);
        Assert.Null(await windows.WithdrawAsync("tnt-b", "mw-planned", "apikey:sre", Start));
        var listed = await windows.ListAsync("tnt-a", "ins-a", Start, Start.AddDays(1));
        Assert.Equal(3, listed.Count);
        Assert.Equal(["mw-planned"], listed.Where(window => window.Excuses).Select(window => window.Id));
        Assert.Equal(MaintenanceKind.Emergency, listed.Single(window => window.Id == "mw-emergency").Kind);
    }

    private async Task<Database> DatabaseAsync(DatabaseProvider provider)
    {
        var database = provider == DatabaseProvider.Postgres
            ? Database.Postgres(await PostgresServer.CreateDatabaseAsync("billing"))
            : Database.Sqlite(Path.Combine(_directory.Path, "billing.db"));
        Assert.NotEmpty(await Migrations.ApplyAsync(database, s_migrations));
        Assert.Empty(await Migrations.ApplyAsync(database, s_migrations));
        return database;
    }

    private static MaintenanceWindow Window(string id, string? instanceId) => new()
    {
        Id = id,
        TenantId = "tnt-a",
        InstanceId = instanceId,
        StartsAt = Start.AddHours(2),
        EndsAt = Start.AddHours(3),
        Reason = "Kernel upgrade",
        AnnouncedBy = "apikey:test",
        AnnouncedAt = Start,
    };

    private static SlaAssessment Assessment(decimal uptime, long credit) => new()
    {
        Id = "sla:ins-a:2026-11",
        TenantId = "tnt-a",
        InstanceId = "ins-a",
        Plan = "team",
        Month = new DateOnly(2026, 11, 1),
        EligibleMinutes = 39_702,
        BadMinutes = 45,
        MaintenanceMinutes = 8,
        UptimePercent = uptime,
        TargetPercent = 99.9m,
        TierBelowPercent = 99.9m,
        CreditPercent = 10m,
        RunningSecondsBySize = new Dictionary<string, long> { ["small"] = 2_382_600 },
        ChargeMinorUnits = 2_647,
        CreditMinorUnits = credit,
        Currency = "usd",
        AssessedAt = new DateTimeOffset(2026, 12, 1, 0, 5, 0, TimeSpan.Zero),
    };
}
