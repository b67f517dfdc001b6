using Billing.Sla;
using Billing.Usage;

namespace Billing.Tests.Sla;

/// <summary>
/// The SLA arithmetic by hand-checkable cases: which minutes count, which are bad, how minutes nobody probed are judged,
/// and what they are worth.
/// </summary>
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

        var measured = SlaCalculator.Measure(timeline, [], Probed(0, 100), Start, Minute(100), final: true);

        Assert.Equal(7 + 10 + 5, measured.EligibleMinutes);  // 3–9, 10–19, 25–29
        Assert.Equal(22, measured.GoodMinutes);
        Assert.Equal(100m, measured.UptimePercent);
        Assert.Equal(7.5 * 60 + 5.5 * 60, measured.RunningSecondsBySize["small"]);
    }

    [Fact]
    public void A_failure_before_the_instance_ever_served_is_not_counted()
    {
        var measured = SlaCalculator.Measure(
            Timeline((0, MeteredState.Provisioning), (5, MeteredState.Failed)), [], [new ProbedMinute(MinuteNumber(6), IsBad: true)], Start, Minute(60), final: true);

        Assert.Equal(0, measured.EligibleMinutes);
        Assert.Equal(0, measured.BadMinutes);
        Assert.Equal(100m, measured.UptimePercent);
    }

    [Fact]
    public void Bad_minutes_count_only_when_eligible_and_a_window_takes_every_minute_it_touches()
    {
        var timeline = Timeline((0, MeteredState.Running), (50, MeteredState.Stopped), (55, MeteredState.Running));
        TimeRange[] maintenance = [new(Minute(10.5), Minute(12.25))];  // touches minutes 10, 11 and 12
        var probed = Probed(0, 60, bad: [3, 11, 51, 56]);

        var measured = SlaCalculator.Measure(timeline, maintenance, probed, Start, Minute(60), final: true);

        Assert.Equal(50 - 3 + 5, measured.EligibleMinutes);
        Assert.Equal(3, measured.MaintenanceMinutes);
        Assert.Equal(2, measured.BadMinutes);                  // 3 and 56; 11 is maintenance, 51 the customer's stop
        Assert.Equal(96.1538m, measured.UptimePercent);         // 50 / 52 = 96.153846…, truncated
    }

    [Fact]
    public void Unprobed_minutes_the_same_process_served_through_are_available()
    {
        // The control plane was down for minutes 10–19; after it, the process that answered at 9:30 is still up and
        // its uptime grew by the 11 minutes between the two sightings.
        var measured = SlaCalculator.Measure(Running(), [], [.. Probed(0, 10), .. Probed(20, 30)], Start, Minute(30), final: true);

        Assert.Equal((30, 20, 0), (measured.EligibleMinutes, measured.GoodMinutes, measured.BadMinutes));
        Assert.Equal((10, 10, 0, 0), (measured.UnmeasuredMinutes, measured.UnmeasuredProvenMinutes, measured.UnmeasuredUnprovenMinutes, measured.UnmeasuredPendingMinutes));
        Assert.Equal(100m, measured.UptimePercent);
    }

    [Fact]
    public void Unprobed_minutes_across_a_restart_are_bad()
    {
        // After the gap another process answers: the instance went down at some point nobody saw.
        var measured = SlaCalculator.Measure(Running(), [], [.. Probed(0, 10), .. Probed(20, 30, runId: "run-b", startedAtMinute: 15)], Start, Minute(30), final: true);

        Assert.Equal((20, 0, 10), (measured.GoodMinutes, measured.UnmeasuredProvenMinutes, measured.UnmeasuredUnprovenMinutes));
        Assert.Equal(66.6666m, measured.UptimePercent);   // 20 / 30, truncated
    }

    [Fact]
    public void The_same_run_id_with_an_uptime_that_does_not_span_the_gap_proves_nothing()
    {
        // The same run id, yet up only since minute 15: not the process seen before the gap, whatever its id says.
        var measured = SlaCalculator.Measure(Running(), [], [.. Probed(0, 10), .. Probed(20, 30, startedAtMinute: 15)], Start, Minute(30), final: true);

        Assert.Equal((0, 10), (measured.UnmeasuredProvenMinutes, measured.UnmeasuredUnprovenMinutes));
        Assert.Equal(66.6666m, measured.UptimePercent);
    }

    [Fact]
    public void A_gap_no_probe_has_ended_is_pending_while_the_month_is_open_and_bad_once_it_closes()
    {
        var probed = Probed(0, 20);

        var open = SlaCalculator.Measure(Running(), [], probed, Start, Minute(30), final: false);
        var closed = SlaCalculator.Measure(Running(), [], probed, Start, Minute(30), final: true);

        Assert.Equal((20, 0, 0, 10), (open.GoodMinutes, open.UnmeasuredProvenMinutes, open.UnmeasuredUnprovenMinutes, open.UnmeasuredPendingMinutes));
        Assert.Equal(100m, open.UptimePercent);            // 20 judged, all good
        Assert.Equal((20, 0, 10, 0), (closed.GoodMinutes, closed.UnmeasuredProvenMinutes, closed.UnmeasuredUnprovenMinutes, closed.UnmeasuredPendingMinutes));
        Assert.Equal(66.6666m, closed.UptimePercent);
    }

    [Fact]
    public void A_gap_with_no_probe_before_it_or_no_process_seen_beside_it_is_bad()
    {
        // Nothing probed in minutes 0–4; minutes 10–14 end at a probe that failed, so no process was seen after them.
        ProbedMinute[] probed = [.. Probed(5, 10), new ProbedMinute(MinuteNumber(15), IsBad: true), .. Probed(16, 20)];

        var measured = SlaCalculator.Measure(Running(), [], probed, Start, Minute(20), final: true);

        Assert.Equal((9, 1, 0, 10), (measured.GoodMinutes, measured.BadMinutes, measured.UnmeasuredProvenMinutes, measured.UnmeasuredUnprovenMinutes));
    }

    [Fact]
    public void A_probe_before_the_month_can_prove_the_gap_at_its_start()
    {
        ProbedMinute[] probed = [.. Probed(-2, -1), .. Probed(5, 10)];

        var measured = SlaCalculator.Measure(Running(-10), [], probed, Start, Minute(10), final: true);

        Assert.Equal((5, 5, 0), (measured.GoodMinutes, measured.UnmeasuredProvenMinutes, measured.UnmeasuredUnprovenMinutes));
    }

    [Fact]
    public void A_sighting_is_read_from_garnets_info()
    {
        const string Info = "# Server\r\nredis_version:7.2.5\r\nrun_id:0f3c2a\r\nuptime_in_seconds:75\r\nuptime_in_days:0\r\n";

        Assert.Equal(new ProcessSighting("0f3c2a", 75, Start), ProcessSighting.Parse(Info, Start));
        Assert.Null(ProcessSighting.Parse("# Server\r\nrun_id:0f3c2a\r\n", Start));
        Assert.Null(ProcessSighting.Parse(null, Start));
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

    private static InstanceTimeline Running(double since = 0) => Timeline((since, MeteredState.Running));

    /// <summary>
    /// One probe in the middle of each minute in [from, to), answered by <paramref name="runId"/>, a process up since
    /// <paramref name="startedAtMinute"/>; the minutes in <paramref name="bad"/> were bad.
    /// </summary>
    private static List<ProbedMinute> Probed(int from, int to, string runId = "run-a", double startedAtMinute = -30, int[]? bad = null) =>
        [.. Enumerable.Range(from, to - from).Select(minute => new ProbedMinute(
            MinuteNumber(minute),
            bad?.Contains(minute) == true,
            new ProcessSighting(runId, (long)((minute + 0.5 - startedAtMinute) * 60), Minute(minute + 0.5))))];

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
