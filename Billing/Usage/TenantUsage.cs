using Billing.Ledger;
using Billing.Sla;
using ControlPlane.Persistence;
using Microsoft.Extensions.DependencyInjection;

namespace Billing.Usage;

/// <summary>How much of one meter was used.</summary>
public sealed record MeterUsage(string Meter, long Quantity);

/// <summary>What usage under one plan came to: the plan in force over [<see cref="From"/>, <see cref="To"/>) and the charge at its prices.</summary>
public sealed record PlanPeriodCharge(string Plan, DateTimeOffset From, DateTimeOffset To, long EstimatedChargeMinorUnits);

/// <summary>
/// One instance's usage in a month: the ledger's quantities, their charge under the plans in force, and the SLA credit so
/// far. <see cref="PlanCharges"/> splits the charge by plan when the plan changed in the month (null otherwise).
/// </summary>
public sealed record InstanceUsage(
    string InstanceId, IReadOnlyList<MeterUsage> Meters, long EstimatedChargeMinorUnits, long SlaCreditMinorUnits, IReadOnlyList<PlanPeriodCharge>? PlanCharges = null);

/// <summary>
/// A tenant's usage for a month as its customers see it: per instance and meter, the hours already in the usage ledger
/// (the figures finance reconciles against Stripe), the charge they come to under the tenant's plans, and the SLA credit
/// earned so far (final once the month is closed).
/// </summary>
public sealed record TenantUsageReport
{
    public required string TenantId { get; init; }
    public required string Month { get; init; }
    /// <summary>The plan in force at the end of the month, or now while it runs.</summary>
    public required string Plan { get; init; }
    public required string Currency { get; init; }
    /// <summary>Usage up to this time is in the figures (whole hours: the current hour is added once it has ended).</summary>
    public required DateTimeOffset MeteredUntil { get; init; }
    public required IReadOnlyList<InstanceUsage> Instances { get; init; }
    public required IReadOnlyList<MeterUsage> Totals { get; init; }
    /// <summary>Each plan in force during the month, in order, and what the instances' usage under it came to.</summary>
    public required IReadOnlyList<PlanPeriodCharge> PlanPeriods { get; init; }
    public required long EstimatedChargeMinorUnits { get; init; }
    public required long SlaCreditMinorUnits { get; init; }
    /// <summary>The charge less the credit: what the month comes to so far.</summary>
    public long NetMinorUnits => EstimatedChargeMinorUnits - SlaCreditMinorUnits;
}

public sealed class TenantUsage(Database database, SlaReports sla, [FromKeyedServices(BillingClock.Key)] TimeProvider clock)
{
    public async Task<TenantUsageReport> ForTenantAsync(string tenantId, SlaMonth month, CancellationToken cancellationToken = default)
    {
        var (start, end) = UsageHours.Month(month.FirstDay);
        var rows = await database.QueryAsync(
            """
            SELECT instance_id, meter, hour_start, SUM(quantity) FROM usage_ledger
            WHERE tenant_id = @tenant AND hour_start >= @start AND hour_start < @end
            GROUP BY instance_id, meter, hour_start ORDER BY instance_id, meter, hour_start
            """,
            reader => new LedgerHour(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3)),
            cancellationToken,
            ("tenant", tenantId),
            ("start", start),
            ("end", end));
        var plans = await sla.PlanPeriodsAsync(tenantId, month, cancellationToken);
        var credits = (await sla.ForTenantAsync(tenantId, month, cancellationToken)).Instances.ToDictionary(report => report.InstanceId, report => report.CreditMinorUnits);
        var instances = rows.GroupBy(row => row.InstanceId)
            .Select(instance => Priced(instance.Key, [.. instance], plans, credits.GetValueOrDefault(instance.Key)))
            .Concat(credits.Where(credit => rows.All(row => row.InstanceId != credit.Key)).Select(credit => new InstanceUsage(credit.Key, [], 0, credit.Value)))
            .OrderBy(instance => instance.InstanceId, StringComparer.Ordinal)
            .ToList();
        var now = clock.GetUtcNow();
        return new TenantUsageReport
        {
            TenantId = tenantId,
            Month = month.ToString(),
            Plan = plans[^1].Plan.Name,
            Currency = plans[^1].Plan.Prices.Currency,
            MeteredUntil = UsageMeters.HourOf(now < month.End ? now : month.End),
            Instances = instances,
            Totals = [.. rows.GroupBy(row => row.Meter).Select(meter => new MeterUsage(meter.Key, meter.Sum(row => row.Quantity))).OrderBy(m => m.Meter, StringComparer.Ordinal)],
            PlanPeriods = [.. plans.Select((period, i) => new PlanPeriodCharge(
                period.Plan.Name, period.From, period.To, instances.Sum(instance => instance.PlanCharges?[i].EstimatedChargeMinorUnits ?? instance.EstimatedChargeMinorUnits)))],
            EstimatedChargeMinorUnits = instances.Sum(instance => instance.EstimatedChargeMinorUnits),
            SlaCreditMinorUnits = instances.Sum(instance => instance.SlaCreditMinorUnits),
        };
    }

    /// <summary>One instance's hours priced under the plans: its charge is the sum of each plan period's, each rounded once.</summary>
    private static InstanceUsage Priced(string instanceId, IReadOnlyList<LedgerHour> hours, IReadOnlyList<PlanPeriod> plans, long credit)
    {
        var charges = UsagePricing.ChargesByPeriod(
            hours.Where(hour => UsageMeters.SizeOf(hour.Meter) is not null).Select(hour => (hour.HourStart, UsageMeters.SizeOf(hour.Meter)!, hour.Quantity)),
            plans);
        return new InstanceUsage(
            instanceId,
            [.. hours.GroupBy(hour => hour.Meter).Select(meter => new MeterUsage(meter.Key, meter.Sum(hour => hour.Quantity)))],
            charges.Sum(),
            credit,
            plans.Count == 1 ? null : [.. plans.Select((period, i) => new PlanPeriodCharge(period.Plan.Name, period.From, period.To, charges[i]))]);
    }

    private sealed record LedgerHour(string InstanceId, string Meter, long HourStart, long Quantity);
}
