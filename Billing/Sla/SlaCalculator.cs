using Billing.Usage;

namespace Billing.Sla;

/// <summary>What one instance's SLA measured over a period (see <see cref="SlaCalculator"/>).</summary>
public sealed record SlaMeasurement(
    long EligibleMinutes,
    long BadMinutes,
    long MaintenanceMinutes,
    decimal UptimePercent,
    IReadOnlyDictionary<string, long> RunningSecondsBySize);

/// <summary>What a measurement is worth under a plan.</summary>
public sealed record SlaOutcome(decimal? TargetPercent, SlaCreditTier? Tier, decimal CreditPercent, long ChargeMinorUnits, long CreditMinorUnits, string Currency);

/// <summary>
/// The SLA arithmetic, kept free of storage so it can be checked by hand. A minute is <b>eligible</b> when the whole
/// minute lies in the instance's SLA time (<see cref="InstanceTimeline.SlaRanges"/>) and no announced maintenance
/// window touches it; uptime % = (eligible − bad) / eligible × 100, truncated to 4 decimals (100 when nothing was
/// eligible). Truncating never rounds up into a better tier: tier thresholds have at most 4 decimals.
/// </summary>
public static class SlaCalculator
{
    private const long MinuteMs = 60_000;

    public static SlaMeasurement Measure(
        InstanceTimeline timeline,
        IReadOnlyCollection<TimeRange> maintenance,
        IReadOnlyCollection<long> badMinutes,
        DateTimeOffset from,
        DateTimeOffset to)
    {
        var slaRanges = timeline.SlaRanges(from, to);
        var eligibleRanges = Subtract(slaRanges, maintenance);
        var eligible = eligibleRanges.Sum(WholeMinutes);
        var bad = badMinutes.LongCount(minute => eligibleRanges.Any(range => Contains(range, minute)));
        return new SlaMeasurement(eligible, bad, slaRanges.Sum(WholeMinutes) - eligible, UptimePercent(eligible, bad), timeline.RunningSecondsBySize(from, to));
    }

    public static decimal UptimePercent(long eligibleMinutes, long badMinutes) =>
        eligibleMinutes == 0 ? 100m : decimal.Truncate((eligibleMinutes - badMinutes) * 100m / eligibleMinutes * 10_000m) / 10_000m;

    public static SlaOutcome Assess(SlaMeasurement measurement, BillingPlan plan)
    {
        var tier = plan.Sla.TierFor(measurement.UptimePercent);
        var charge = plan.Prices.ChargeFor(measurement.RunningSecondsBySize);
        var creditPercent = tier?.CreditPercent ?? 0m;
        var credit = (long)decimal.Round(charge * creditPercent / 100m, MidpointRounding.AwayFromZero);
        return new SlaOutcome(plan.Sla.TargetPercent, tier, creditPercent, charge, credit, plan.Prices.Currency);
    }

    /// <summary>Whole minutes (on minute boundaries) inside the range.</summary>
    private static long WholeMinutes(TimeRange range)
    {
        var first = CeilingMinute(range.Start);
        var end = range.End.ToUnixTimeMilliseconds() / MinuteMs;
        return Math.Max(0, end - first);
    }

    private static bool Contains(TimeRange range, long minute) =>
        minute >= CeilingMinute(range.Start) && (minute + 1) * MinuteMs <= range.End.ToUnixTimeMilliseconds();

    private static long CeilingMinute(DateTimeOffset time) => (time.ToUnixTimeMilliseconds() + MinuteMs - 1) / MinuteMs;

    private static List<TimeRange> Subtract(IReadOnlyList<TimeRange> ranges, IReadOnlyCollection<TimeRange> holes)
    {
        var remaining = ranges.ToList();
        foreach (var hole in holes)
        {
            remaining = [.. remaining.SelectMany(range => Without(range, hole))];
        }

        return remaining;
    }

    private static IEnumerable<TimeRange> Without(TimeRange range, TimeRange hole)
    {
        if (hole.End <= range.Start || hole.Start >= range.End)
        {
            yield return range;
            yield break;
        }

        // A window that touches part of a minute takes the whole minute: widen it to minute boundaries.
        var holeStart = DateTimeOffset.FromUnixTimeMilliseconds(hole.Start.ToUnixTimeMilliseconds() / MinuteMs * MinuteMs);
        var holeEnd = DateTimeOffset.FromUnixTimeMilliseconds(CeilingMinute(hole.End) * MinuteMs);
        if (range.Start < holeStart)
        {
            yield return range with { End = holeStart };
        }

        if (holeEnd < range.End)
        {
            yield return range with { Start = holeEnd };
        }
    }
}
