using System.Globalization;
using System.Text.Json;
using Billing.Credits;
using ControlPlane.Persistence;

namespace Billing.Sla;

/// <summary>
/// Closed months' assessments, stored once by <see cref="SlaAssessment.Id"/> and never updated: closing a month again
/// (a retry, a second silo, an admin) answers the assessment stored first.
/// </summary>
public sealed class SlaAssessments(Database database) : ISlaAssessmentSource
{
    public static readonly Migration Migration = new(
        "sla-0003-assessments",
        Sqlite: Schema,
        Postgres: Schema);

    /// <summary>Good and unmeasured minutes apart; rows assessed before have none unmeasured and read good as eligible − bad.</summary>
    public static readonly Migration UnmeasuredMigration = Migration.Portable(
        "sla-0006-assessment-unmeasured",
        """
        ALTER TABLE sla_assessments ADD COLUMN good_minutes BIGINT NULL;
        ALTER TABLE sla_assessments ADD COLUMN unmeasured_proven_minutes BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE sla_assessments ADD COLUMN unmeasured_unproven_minutes BIGINT NOT NULL DEFAULT 0;
        """);

    /// <summary>An assessment's plan periods (JSON), when the plan changed during its month; null otherwise.</summary>
    public static readonly Migration PlanPeriodsMigration = new(
        "sla-0007-assessment-plan-periods",
        Sqlite: "ALTER TABLE sla_assessments ADD COLUMN plan_periods TEXT NULL;",
        Postgres: "ALTER TABLE sla_assessments ADD COLUMN plan_periods TEXT NULL;");

    // Decimals as invariant text: SQLite has no exact decimal type, and both dialects then read back the same value.
    private const string Schema = """
        CREATE TABLE sla_assessments (
            id                  TEXT PRIMARY KEY,
            tenant_id           TEXT NOT NULL,
            instance_id         TEXT NOT NULL,
            month               TEXT NOT NULL,
            plan                TEXT NOT NULL,
            eligible_minutes    BIGINT NOT NULL,
            bad_minutes         BIGINT NOT NULL,
            maintenance_minutes BIGINT NOT NULL,
            uptime_percent      TEXT NOT NULL,
            target_percent      TEXT NOT NULL,
            tier_below_percent  TEXT NULL,
            credit_percent      TEXT NOT NULL,
            running_seconds     TEXT NOT NULL,
            charge_minor_units  BIGINT NOT NULL,
            credit_minor_units  BIGINT NOT NULL,
            currency            TEXT NOT NULL,
            assessed_at         BIGINT NOT NULL
        );
        CREATE INDEX sla_assessments_by_month ON sla_assessments (month, tenant_id);
        """;

    private const string Columns = """
        id, tenant_id, instance_id, month, plan, eligible_minutes, bad_minutes, maintenance_minutes, uptime_percent,
        target_percent, tier_below_percent, credit_percent, running_seconds, charge_minor_units, credit_minor_units,
        currency, assessed_at, good_minutes, unmeasured_proven_minutes, unmeasured_unproven_minutes, plan_periods
        """;

    public static string IdFor(string instanceId, SlaMonth month) => $"sla:{instanceId}:{month}";

    /// <summary>Stores the assessment unless one with its id exists; answers the one stored.</summary>
    public async Task<SlaAssessment> InsertOnceAsync(SlaAssessment assessment, CancellationToken cancellationToken = default)
    {
        await database.ExecuteAsync(
            $"""
            INSERT INTO sla_assessments ({Columns})
            VALUES (@id, @tenant, @instance, @month, @plan, @eligible, @bad, @maintenance, @uptime, @target, @tier, @credit_percent,
                    @running, @charge, @credit, @currency, @at, @good, @proven, @unproven, @periods)
            ON CONFLICT (id) DO NOTHING
            """,
            cancellationToken,
            ("id", assessment.Id),
            ("tenant", assessment.TenantId),
            ("instance", assessment.InstanceId),
            ("month", assessment.Month.ToString("yyyy-MM", CultureInfo.InvariantCulture)),
            ("plan", assessment.Plan),
            ("eligible", assessment.EligibleMinutes),
            ("bad", assessment.BadMinutes),
            ("maintenance", assessment.MaintenanceMinutes),
            ("uptime", Text(assessment.UptimePercent)),
            ("target", Text(assessment.TargetPercent)),
            ("tier", assessment.TierBelowPercent is { } tier ? Text(tier) : null),
            ("credit_percent", Text(assessment.CreditPercent)),
            ("running", JsonSerializer.Serialize(assessment.RunningSecondsBySize)),
            ("charge", assessment.ChargeMinorUnits),
            ("credit", assessment.CreditMinorUnits),
            ("currency", assessment.Currency),
            ("at", assessment.AssessedAt.ToUnixTimeMilliseconds()),
            ("good", assessment.GoodMinutes),
            ("proven", assessment.UnmeasuredProvenMinutes),
            ("unproven", assessment.UnmeasuredUnprovenMinutes),
            ("periods", assessment.PlanPeriods is { } periods ? JsonSerializer.Serialize(periods) : null));
        return await GetAsync(assessment.Id, cancellationToken)
            ?? throw new InvalidOperationException($"Assessment {assessment.Id} was neither stored nor found.");
    }

    public async Task<SlaAssessment?> GetAsync(string id, CancellationToken cancellationToken = default) =>
        (await database.QueryAsync($"SELECT {Columns} FROM sla_assessments WHERE id = @id", Read, cancellationToken, ("id", id))).SingleOrDefault();

    /// <summary>A month's assessments, of one tenant or (null) of all, by tenant and instance.</summary>
    public Task<List<SlaAssessment>> ListAsync(SlaMonth month, string? tenantId, CancellationToken cancellationToken = default) =>
        database.QueryAsync(
            tenantId is null
                ? $"SELECT {Columns} FROM sla_assessments WHERE month = @month ORDER BY tenant_id, instance_id"
                : $"SELECT {Columns} FROM sla_assessments WHERE month = @month AND tenant_id = @tenant ORDER BY tenant_id, instance_id",
            Read,
            cancellationToken,
            ("month", month.ToString()),
            ("tenant", tenantId ?? ""));

    private static string Text(decimal value) => value.ToString(CultureInfo.InvariantCulture);

    private static decimal Decimal(string text) => decimal.Parse(text, NumberStyles.Number, CultureInfo.InvariantCulture);

    private static SlaAssessment Read(System.Data.Common.DbDataReader reader) => new()
    {
        Id = reader.GetString(0),
        TenantId = reader.GetString(1),
        InstanceId = reader.GetString(2),
        Month = DateOnly.ParseExact(reader.GetString(3) + "-01", "yyyy-MM-dd", CultureInfo.InvariantCulture),
        Plan = reader.GetString(4),
        EligibleMinutes = reader.GetInt64(5),
        BadMinutes = reader.GetInt64(6),
        MaintenanceMinutes = reader.GetInt64(7),
        UptimePercent = Decimal(reader.GetString(8)),
        TargetPercent = Decimal(reader.GetString(9)),
        TierBelowPercent = reader.IsDBNull(10) ? null : Decimal(reader.GetString(10)),
        CreditPercent = Decimal(reader.GetString(11)),
        RunningSecondsBySize = JsonSerializer.Deserialize<Dictionary<string, long>>(reader.GetString(12)) ?? [],
        ChargeMinorUnits = reader.GetInt64(13),
        CreditMinorUnits = reader.GetInt64(14),
        Currency = reader.GetString(15),
        AssessedAt = DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(16)),
        GoodMinutes = reader.IsDBNull(17) ? reader.GetInt64(5) - reader.GetInt64(6) : reader.GetInt64(17),
        UnmeasuredProvenMinutes = reader.GetInt64(18),
        UnmeasuredUnprovenMinutes = reader.GetInt64(19),
        PlanPeriods = reader.IsDBNull(20) ? null : JsonSerializer.Deserialize<List<SlaPlanPeriod>>(reader.GetString(20)),
    };

    public async Task<IReadOnlyList<DateOnly>> MonthsWithCreditsAsync(CancellationToken cancellationToken = default) =>
        await database.QueryAsync(
            "SELECT DISTINCT month FROM sla_assessments WHERE credit_minor_units > 0 ORDER BY month",
            reader => DateOnly.ParseExact(reader.GetString(0) + "-01", "yyyy-MM-dd", CultureInfo.InvariantCulture),
            cancellationToken);

    /// <summary>What the Stripe side applies credits from: every stored assessment of a closed month.</summary>
    public async Task<IReadOnlyList<SlaAssessment>> AssessmentsForMonthAsync(DateOnly month, CancellationToken cancellationToken = default) =>
        await ListAsync(new SlaMonth(month.Year, month.Month), tenantId: null, cancellationToken);
}
