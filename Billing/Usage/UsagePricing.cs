using Billing.Ledger;
using Billing.Sla;

namespace Billing.Usage;

/// <summary>
/// Prices the usage ledger's hourly instance-seconds under the plans in force. The ledger knows hours, not minutes, so an
/// hour in which the plan changed is prorated by minutes: each plan gets the hour's seconds × its minutes of the hour / 60
/// (a change at 13:37 gives 37/60 of the 13:00 hour to the old plan and 23/60 to the new). Hours under one plan are
/// priced whole, exactly as before any change.
/// </summary>
public static class UsagePricing
{
    /// <summary>Per period of <paramref name="plans"/> (which cover every hour given), the charge of its share of the hours, rounded once.</summary>
    public static IReadOnlyList<long> ChargesByPeriod(IEnumerable<(long HourStart, string Size, long Seconds)> hours, IReadOnlyList<PlanPeriod> plans)
    {
        var seconds = plans.Select(_ => new Dictionary<string, decimal>(StringComparer.Ordinal)).ToArray();
        foreach (var (hourStart, size, quantity) in hours)
        {
            var from = UsageHours.ToTime(hourStart);
            var to = from.AddHours(1);
            for (var i = 0; i < plans.Count; i++)
            {
                if (plans[i].MinutesIn(from, to) is var minutes and > 0)
                {
                    seconds[i][size] = seconds[i].GetValueOrDefault(size) + (quantity * minutes / 60m);
                }
            }
        }

        return [.. plans.Select((period, i) => period.Plan.Prices.ChargeFor(seconds[i]))];
    }
}
