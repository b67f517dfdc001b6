namespace Billing.Sla;

/// <summary>A plan in force over [<see cref="From"/>, <see cref="To"/>), both on whole minutes.</summary>
public sealed record PlanPeriod(DateTimeOffset From, DateTimeOffset To, BillingPlan Plan);

/// <summary>When a tenant moved to <see cref="Plan"/>, as the tenant recorded it.</summary>
public sealed record PlanChangeAt(DateTimeOffset At, BillingPlan Plan);

/// <summary>
/// Which plan billing applies at each minute. A minute is billed under the plan in force at its start, so a change
/// takes effect from the first whole minute at or after it: at 13:37:00 it prices 13:37 on, at 13:37:25 from 13:38.
/// Periods therefore split minutes, never inside one, and the SLA's whole minutes and the usage's proration agree.
/// </summary>
public static class PlanPeriods
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Consecutive periods covering [<paramref name="from"/>, <paramref name="to"/>): <paramref name="initial"/> until the
    /// first change, then each change's plan until the next. Changes out of range only decide the plan at the start.
    /// </summary>
    public static IReadOnlyList<PlanPeriod> Between(BillingPlan initial, IEnumerable<PlanChangeAt> changes, DateTimeOffset from, DateTimeOffset to)
    {
        var periods = new List<PlanPeriod> { new(from, to, initial) };
        foreach (var change in changes.OrderBy(change => change.At))
        {
            var effective = CeilingMinute(change.At);
            if (effective <= from)
            {
                periods[0] = periods[0] with { Plan = change.Plan };
            }
            else if (effective < to)
            {
                periods[^1] = periods[^1] with { To = effective };
                periods.Add(new PlanPeriod(effective, to, change.Plan));
            }
        }

        // Two changes in one minute leave an empty period; a change back and forth leaves two alike: neither is a split.
        var merged = new List<PlanPeriod>();
        foreach (var period in periods.Where(period => period.To > period.From || periods.Count == 1))
        {
            if (merged.Count > 0 && merged[^1].Plan.Name == period.Plan.Name)
            {
                merged[^1] = merged[^1] with { To = period.To };
            }
            else
            {
                merged.Add(period);
            }
        }

        return merged;
    }

    /// <summary>The periods' parts inside [<paramref name="from"/>, <paramref name="to"/>); the first period's plan over it when none overlaps.</summary>
    public static IReadOnlyList<PlanPeriod> Within(this IReadOnlyList<PlanPeriod> periods, DateTimeOffset from, DateTimeOffset to)
    {
        var clipped = periods
            .Where(period => period.From < to && period.To > from)
            .Select(period => new PlanPeriod(period.From < from ? from : period.From, period.To > to ? to : period.To, period.Plan))
            .ToList();
        return clipped.Count > 0 ? clipped : [new PlanPeriod(from, to, periods[0].Plan)];
    }

    /// <summary>Whole minutes the period shares with [<paramref name="from"/>, <paramref name="to"/>).</summary>
    public static long MinutesIn(this PlanPeriod period, DateTimeOffset from, DateTimeOffset to)
    {
        var start = period.From > from ? period.From : from;
        var end = period.To < to ? period.To : to;
        return end > start ? (long)((end - start) / Minute) : 0;
    }

    private static DateTimeOffset CeilingMinute(DateTimeOffset at)
    {
        var floor = new DateTimeOffset(at.UtcTicks - (at.UtcTicks % Minute.Ticks), TimeSpan.Zero);
        return floor == at ? floor : floor + Minute;
    }
}
