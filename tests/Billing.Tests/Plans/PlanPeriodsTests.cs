using Billing.Sla;
using Billing.Usage;

namespace Billing.Tests.Plans;

/// <summary>Which plan each minute is billed under, and how an hour of the ledger is shared when the plan changed inside it.</summary>
public sealed class PlanPeriodsTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset End = Start.AddMonths(1);
    private static readonly BillingPlan Team = Plan("team", 4);
    private static readonly BillingPlan Enterprise = Plan("enterprise", 6);

    [Fact]
    public void A_change_inside_a_minute_takes_effect_from_the_next_whole_minute()
    {
        var periods = PlanPeriods.Between(Team, [new PlanChangeAt(Start.AddDays(9).AddHours(13).AddMinutes(37).AddSeconds(25), Enterprise)], Start, End);

        var change = Start.AddDays(9).AddHours(13).AddMinutes(38);
        Assert.Equal([(Start, change, "team"), (change, End, "enterprise")], periods.Select(p => (p.From, p.To, p.Plan.Name)));
    }

    [Fact]
    public void Changes_before_the_month_set_its_plan_and_changes_within_a_minute_or_back_and_forth_split_nothing()
    {
        var before = PlanPeriods.Between(Team, [new PlanChangeAt(Start.AddDays(-3), Enterprise)], Start, End);
        var sameMinute = PlanPeriods.Between(Team, [new PlanChangeAt(Start.AddHours(1).AddSeconds(10), Enterprise), new PlanChangeAt(Start.AddHours(1).AddSeconds(40), Team)], Start, End);
        var after = PlanPeriods.Between(Team, [new PlanChangeAt(End.AddSeconds(1), Enterprise)], Start, End);

        Assert.Equal([(Start, End, "enterprise")], before.Select(p => (p.From, p.To, p.Plan.Name)));
        Assert.Equal([(Start, End, "team")], sameMinute.Select(p => (p.From, p.To, p.Plan.Name)));
        Assert.Equal([(Start, End, "team")], after.Select(p => (p.From, p.To, p.Plan.Name)));
    }

    [Fact]
    public void An_hour_the_plan_changed_in_is_shared_by_minutes_and_other_hours_are_priced_whole()
    {
        var change = Start.AddHours(13).AddMinutes(45);
        var periods = PlanPeriods.Between(Team, [new PlanChangeAt(change, Enterprise)], Start, End);
        long Hour(int hour) => Start.AddHours(hour).ToUnixTimeSeconds();

        // 12:00 hour: 1800 s × 4 / 3600 = 2 (team). 13:00 hour, 3600 s: 45 min team = 2700 s → 3; 15 min enterprise = 900 s → 1.5 → 2.
        var charges = UsagePricing.ChargesByPeriod([(Hour(12), "small", 1800), (Hour(13), "small", 3600)], periods);

        Assert.Equal([5L, 2L], charges);
    }

    private static BillingPlan Plan(string name, long smallPerHour) =>
        new(name, new PlanSlaTerms(), new PlanPrices { HourlyMinorUnits = new(StringComparer.Ordinal) { ["small"] = smallPerHour } });
}
