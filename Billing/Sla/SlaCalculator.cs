using Billing.Usage;

namespace Billing.Sla;

/// <summary>
/// What one instance's SLA measured over a period (see <see cref="SlaCalculator"/>). Every eligible minute is good, bad
/// or unmeasured; an unmeasured minute is proven (the instance served through it), unproven, or pending (its gap is
/// still open, so it is not judged yet).
/// </summary>
public sealed record SlaMeasurement(
    long EligibleMinutes,
    long BadMinutes,
    long MaintenanceMinutes,
    decimal UptimePercent,
    IReadOnlyDictionary<string, long> RunningSecondsBySize)
{
    /// <summary>Probed and not bad.</summary>
    public long GoodMinutes { get; init; } = EligibleMinutes - BadMinutes;

    public long UnmeasuredProvenMinutes { get; init; }

    public long UnmeasuredUnprovenMinutes { get; init; }

    public long UnmeasuredPendingMinutes { get; init; }

    public long UnmeasuredMinutes => UnmeasuredProvenMinutes + UnmeasuredUnprovenMinutes + UnmeasuredPendingMinutes;
}

/// <summary>What a measurement is worth under a plan.</summary>
public sealed record SlaOutcome(decimal? TargetPercent, SlaCreditTier? Tier, decimal CreditPercent, long ChargeMinorUnits, long CreditMinorUnits, string Currency);

/// <summary>
/// The SLA arithmetic, kept free of storage so it can be checked by hand. A minute is <b>eligible</b> when the whole
/// minute lies in the instance's SLA time (<see cref="InstanceTimeline.SlaRanges"/>) and no announced maintenance
/// window touches it. An eligible minute with a probe is <b>good</b> or <b>bad</b> (<see cref="ProbeMinute.IsBad"/>).
/// One without any (the control plane itself was down) is <b>unmeasured</b>, and judged by the probed minutes around
/// its gap: <b>proven</b> when the process last seen before the gap is the one first seen after it and its uptime spans
/// the time between (<see cref="ProcessSighting.RanThroughUntil"/>); <b>unproven</b> otherwise, including when nothing
/// was probed before it or the process did not answer INFO on either side; and, when no minute after it was probed
/// yet, <b>pending</b> while the period is open and unproven once it is final (a closed month).
/// Uptime % = (good + proven) / (eligible − pending) × 100, truncated to 4 decimals (100 when nothing was judged).
/// Truncating never rounds up into a better tier: tier thresholds have at most 4 decimals.
/// </summary>
public static class SlaCalculator
{
    private const long MinuteMs = 60_000;

    /// <param name="probed">The probed minutes within [from, to) and the last one before, as <see cref="ProbeMinutes.ProbedAsync"/> reads them.</param>
    /// <param name="final">The period is over (a month being closed): a gap no probe has ended is unproven, not pending.</param>
    public static SlaMeasurement Measure(
        InstanceTimeline timeline,
        IReadOnlyCollection<TimeRange> maintenance,
        IReadOnlyCollection<ProbedMinute> probed,
        DateTimeOffset from,
        DateTimeOffset to,
        bool final)
    {
        var slaRanges = timeline.SlaRanges(from, to);
        var eligibleRanges = Subtract(slaRanges, maintenance);
        var eligible = eligibleRanges.Sum(WholeMinutes);
        // Probes after the period may end a gap inside it (a plan change splits a month into periods); whatever the caller
        // read is all there is, so a closed month is judged only by its own probes.
        var probes = probed.OrderBy(minute => minute.Minute).ToList();
        long bad = 0, proven = 0, unproven = 0, pending = 0;
        var next = 0;
        ProbedMinute? previous = null;
        foreach (var minute in eligibleRanges.OrderBy(range => range.Start).SelectMany(EligibleMinutes))
        {
            while (next < probes.Count && probes[next].Minute < minute)
            {
                previous = probes[next++];
            }

            var after = next < probes.Count ? probes[next] : null;
            if (after?.Minute == minute)
            {
                bad += after.IsBad ? 1 : 0;
                continue;
            }

            switch (JudgeGap(previous, after, final))
            {
                case Unmeasured.Proven: proven++; break;
                case Unmeasured.Unproven: unproven++; break;
                default: pending++; break;
            }
        }

        var good = eligible - bad - proven - unproven - pending;
        return new SlaMeasurement(eligible, bad, slaRanges.Sum(WholeMinutes) - eligible, UptimeOf(judgedMinutes: eligible - pending, availableMinutes: good + proven), timeline.RunningSecondsBySize(from, to))
        {
            GoodMinutes = good,
            UnmeasuredProvenMinutes = proven,
            UnmeasuredUnprovenMinutes = unproven,
            UnmeasuredPendingMinutes = pending,
        };
    }

    /// <summary>(available / judged) × 100, truncated to 4 decimals; 100 when no minute was judged.</summary>
    public static decimal UptimeOf(long judgedMinutes, long availableMinutes) =>
        judgedMinutes == 0 ? 100m : decimal.Truncate(availableMinutes * 100m / judgedMinutes * 10_000m) / 10_000m;

    public static SlaOutcome Assess(SlaMeasurement measurement, BillingPlan plan)
    {
        var tier = plan.Sla.TierFor(measurement.UptimePercent);
        var charge = plan.Prices.ChargeFor(measurement.RunningSecondsBySize);
        var creditPercent = tier?.CreditPercent ?? 0m;
        var credit = (long)decimal.Round(charge * creditPercent / 100m, MidpointRounding.AwayFromZero);
        return new SlaOutcome(plan.Sla.TargetPercent, tier, creditPercent, charge, credit, plan.Prices.Currency);
    }

    private enum Unmeasured
    {
        Proven,
        Unproven,
        Pending,
    }

    private static Unmeasured JudgeGap(ProbedMinute? before, ProbedMinute? after, bool final) =>
        after is null ? (final ? Unmeasured.Unproven : Unmeasured.Pending)
        : before?.Run is { } last && after.Run is { } first && last.RanThroughUntil(first) ? Unmeasured.Proven
        : Unmeasured.Unproven;

    private static IEnumerable<long> EligibleMinutes(TimeRange range)
    {
        for (var minute = CeilingMinute(range.Start); (minute + 1) * MinuteMs <= range.End.ToUnixTimeMilliseconds(); minute++)
        {
            yield return minute;
        }
    }

    /// <summary>Whole minutes (on minute boundaries) inside the range.</summary>
    private static long WholeMinutes(TimeRange range)
    {
        var first = CeilingMinute(range.Start);
        var end = range.End.ToUnixTimeMilliseconds() / MinuteMs;
        return Math.Max(0, end - first);
    }

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
