using Billing.Sla;
using Billing.Usage;

namespace Billing.Tests.Sla;

/// <summary>The SLA arithmetic by hand-checkable cases: which minutes count, which are bad, and what they are worth.</summary>
public sealed class SlaCalculatorTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);

    private static DateTimeOffset Minute(double minute) => Start.AddMinutes(minute);

    private static long MinuteNumber(double minute) => ProbeMinute.MinuteOf(Minute(minute));

    private static InstanceTimeline Timeline(params (double Minute, MeteredState State)[] changes) =>
        new("ins-test", "tnt-test", [.. changes.Select(change => new LifecycleChange(Minute(change.Minute), change.State, "small"))]);

    [Fact]
    public void Only_whole_minutes_after_the_first_running_and_before_deletion_count()
    {
        var timeline = Timeline(
            (0, MeteredState.Provisioning),
            (2.5, MeteredState.Running),     // minute 2 is only half served: not eligible
            (10, MeteredState.Failed),       // the platform's failure still counts
            (20, MeteredState.Updating),     // a customer's scale does not
            (25, MeteredState.Running),
            (30.5, MeteredState.Deleted));

        var measured = SlaCalculator.Measure(timeline, [], [], Start, Minute(100));

        Assert.Equal(7 + 10 + 5, measured.EligibleMinutes);  // 3–9, 10–19, 25–29
        Assert.Equal(100m, measured.UptimePercent);
        Assert.Equal(7.5 * 60 + 5.5 * 60, measured.RunningSecondsBySize["small"]);
    }

    [Fact]
    public void A_failure_before_the_instance_ever_served_is_not_counted()
    {
        var measured = SlaCalculator.Measure(Timeline((0, MeteredState.Provisioning), (5, MeteredState.Failed)), [], [MinuteNumber(6)], Start, Minute(60));

        Assert.Equal(0, measured.EligibleMinutes);
        Assert.Equal(0, measured.BadMinutes);
        Assert.Equal(100m, measured.UptimePercent);
    }

    [Fact]
    public void Bad_minutes_count_only_when_eligible_and_a_window_takes_every_minute_it_touches()
    {
        var timeline = Timeline((0, MeteredState.Running), (50, MeteredState.Stopped), (55, MeteredState.Running));
        TimeRange[] maintenance = [new(Minute(10.5), Minute(12.25))];  // touches minutes 10, 11 and 12
        long[] bad = [MinuteNumber(3), MinuteNumber(11), MinuteNumber(51), MinuteNumber(56)];

        var measured = SlaCalculator.Measure(timeline, maintenance, bad, Start, Minute(60));

        Assert.Equal(50 - 3 + 5, measured.EligibleMinutes);
        Assert.Equal(3, measured.MaintenanceMinutes);
        Assert.Equal(2, measured.BadMinutes);                  // 3 and 56; 11 is maintenance, 51 the customer's stop
        Assert.Equal(96.1538m, measured.UptimePercent);         // 50 / 52 = 96.153846…, truncated
    }

    [Theory]
    [InlineData(100, 0, null, 0)]
    [InlineData(99.9, 0, null, 0)]
    [InlineData(99.8999, 10, 99.9, 10)]
    [InlineData(99, 10, 99.9, 10)]
    [InlineData(98.9999, 25, 99.0, 25)]
    [InlineData(94.9999, 100, 95.0, 100)]
    public void The_lowest_threshold_below_which_the_uptime_fell_sets_the_credit(double uptime, double expectedCredit, double? expectedTier, long expectedCreditMinorUnits)
    {
        var plan = TeamPlan();
        var measured = new SlaMeasurement(1000, 0, 0, (decimal)uptime, new Dictionary<string, long> { ["small"] = 90_000 });

        var outcome = SlaCalculator.Assess(measured, plan);

        Assert.Equal((decimal)expectedCredit, outcome.CreditPercent);
        Assert.Equal((decimal?)expectedTier, outcome.Tier?.BelowPercent);
        Assert.Equal(100, outcome.ChargeMinorUnits);             // 25 h at 4 cents
        Assert.Equal(expectedCreditMinorUnits, outcome.CreditMinorUnits);
    }

    [Fact]
    public void A_plan_without_an_sla_earns_no_credit_however_bad_the_month()
    {
        var plan = new BillingPlan("developer", new PlanSlaTerms(), new PlanPrices { HourlyMinorUnits = { ["small"] = 2 } });

        var outcome = SlaCalculator.Assess(new SlaMeasurement(100, 100, 0, 0m, new Dictionary<string, long> { ["small"] = 5_400 }), plan);

        Assert.Null(outcome.TargetPercent);
        Assert.Equal(0m, outcome.CreditPercent);
        Assert.Equal(3, outcome.ChargeMinorUnits);               // 1.5 h at 2 cents
        Assert.Equal(0, outcome.CreditMinorUnits);
    }

    [Fact]
    public void Sla_terms_that_cannot_be_applied_as_written_are_refused()
    {
        var terms = new PlanSlaTerms
        {
            TargetPercent = 99.9m,
            CreditTiers = [new SlaCreditTier { BelowPercent = 99.95m, CreditPercent = 10 }, new SlaCreditTier { BelowPercent = 99.12345m, CreditPercent = 0 }],
        };

        Assert.Equal(3, terms.Problems("team").Count());
        Assert.Empty(TeamPlan().Sla.Problems("team"));
    }

    private static BillingPlan TeamPlan() => new(
        "team",
        new PlanSlaTerms
        {
            TargetPercent = 99.9m,
            CreditTiers =
            [
                new SlaCreditTier { BelowPercent = 99.9m, CreditPercent = 10 },
                new SlaCreditTier { BelowPercent = 99m, CreditPercent = 25 },
                new SlaCreditTier { BelowPercent = 95m, CreditPercent = 100 },
            ],
        },
        new PlanPrices { HourlyMinorUnits = { ["small"] = 4 } });
}
