using Billing.Ledger;
using Billing.Sla;
using ControlPlane.Persistence;
using Microsoft.Extensions.DependencyInjection;

namespace Billing.Usage;

/// <summary>How much of one meter was used.</summary>
public sealed record MeterUsage(string Meter, long Quantity);

/// <summary>One instance's usage in a month: the ledger's quantities, their charge under the plan, and the SLA credit so far.</summary>
public sealed record InstanceUsage(string InstanceId, IReadOnlyList<MeterUsage> Meters, long EstimatedChargeMinorUnits, long SlaCreditMinorUnits);

/// <summary>
/// A tenant's usage for a month as its customers see it: per instance and meter, the hours already in the usage ledger
/// (the figures finance reconciles against Stripe), the charge they come to under the tenant's plan, and the SLA credit
/// earned so far (final once the month is closed).
/// </summary>
public sealed record TenantUsageReport
{
    public required string TenantId { get; init; }
    public required string Month { get; init; }
    public required string Plan { get; init; }
    public required string Currency { get; init; }
    /// <summary>Usage up to this time is in the figures (whole hours: the current hour is added once it has ended).</summary>
    public required DateTimeOffset MeteredUntil { get; init; }
    public required IReadOnlyList<InstanceUsage> Instances { get; init; }
    public required IReadOnlyList<MeterUsage> Totals { get; init; }
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
            SELECT instance_id, meter, SUM(quantity) FROM usage_ledger
            WHERE tenant_id = @tenant AND hour_start >= @start AND hour_start < @end
            GROUP BY instance_id, meter ORDER BY instance_id, meter
            """,
            reader => (InstanceId: reader.GetString(0), Meter: reader.GetString(1), Quantity: reader.GetInt64(2)),
            cancellationToken,
            ("tenant", tenantId),
            ("start", start),
            ("end", end));
        var plan = await sla.PlanAsync(tenantId, cancellationToken);
        var credits = (await sla.ForTenantAsync(tenantId, month, cancellationToken)).Instances.ToDictionary(report => report.InstanceId, report => report.CreditMinorUnits);
        var instances = rows.GroupBy(row => row.InstanceId)
            .Select(instance => new InstanceUsage(
                instance.Key,
                [.. instance.Select(row => new MeterUsage(row.Meter, row.Quantity))],
                plan.Prices.ChargeFor(RunningSecondsBySize(instance.Select(row => (row.Meter, row.Quantity)))),
                credits.GetValueOrDefault(instance.Key)))
            .Concat(credits.Where(credit => rows.All(row => row.InstanceId != credit.Key)).Select(credit => new InstanceUsage(credit.Key, [], 0, credit.Value)))
            .OrderBy(instance => instance.InstanceId, StringComparer.Ordinal)
            .ToList();
        var now = clock.GetUtcNow();
        return new TenantUsageReport
        {
            TenantId = tenantId,
            Month = month.ToString(),
            Plan = plan.Name,
            Currency = plan.Prices.Currency,
            MeteredUntil = UsageMeters.HourOf(now < month.End ? now : month.End),
            Instances = instances,
            Totals = [.. rows.GroupBy(row => row.Meter).Select(meter => new MeterUsage(meter.Key, meter.Sum(row => row.Quantity))).OrderBy(m => m.Meter, StringComparer.Ordinal)],
            EstimatedChargeMinorUnits = instances.Sum(instance => instance.EstimatedChargeMinorUnits),
            SlaCreditMinorUnits = instances.Sum(instance => instance.SlaCreditMinorUnits),
        };
    }

    private static Dictionary<string, long> RunningSecondsBySize(IEnumerable<(string Meter, long Quantity)> meters) =>
        meters.Where(meter => UsageMeters.SizeOf(meter.Meter) is not null)
            .ToDictionary(meter => UsageMeters.SizeOf(meter.Meter)!, meter => meter.Quantity, StringComparer.Ordinal);
}
