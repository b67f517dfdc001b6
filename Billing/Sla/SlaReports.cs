using Billing.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace Billing.Sla;

/// <summary>One instance's SLA for a month: measured so far while the month is open, the stored assessment once closed.</summary>
public sealed record InstanceSlaReport
{
    public required string InstanceId { get; init; }
    public required string TenantId { get; init; }
    public required string Month { get; init; }
    public required string Plan { get; init; }
    /// <summary><c>open</c> (measured until <see cref="MeasuredUntil"/>) or <c>closed</c> (assessed; see <see cref="AssessmentId"/>).</summary>
    public required string Status { get; init; }
    public required DateTimeOffset MeasuredUntil { get; init; }
    /// <summary>Good, bad and unmeasured together: the minutes the SLA counts.</summary>
    public required long EligibleMinutes { get; init; }
    /// <summary>Probed and available.</summary>
    public required long GoodMinutes { get; init; }
    /// <summary>Probed, and more than half the probes failed.</summary>
    public required long BadMinutes { get; init; }
    /// <summary>Not probed (the control plane itself was down): proven, unproven and pending together.</summary>
    public required long UnmeasuredMinutes { get; init; }
    /// <summary>Unmeasured, and the instance's process demonstrably ran throughout: counted available.</summary>
    public required long UnmeasuredProvenMinutes { get; init; }
    /// <summary>Unmeasured, and nothing proves the instance served: counted unavailable.</summary>
    public required long UnmeasuredUnprovenMinutes { get; init; }
    /// <summary>Unmeasured, and no probe has ended the gap yet (open months only): not judged, so not in the uptime.</summary>
    public required long UnmeasuredPendingMinutes { get; init; }
    public required long MaintenanceMinutes { get; init; }
    /// <summary>(good + unmeasured proven) / (eligible − pending) × 100, truncated to 4 decimals.</summary>
    public required decimal UptimePercent { get; init; }
    /// <summary>Null when the plan has no SLA.</summary>
    public decimal? TargetPercent { get; init; }
    public decimal? TierBelowPercent { get; init; }
    public required decimal CreditPercent { get; init; }
    public required long ChargeMinorUnits { get; init; }
    public required long CreditMinorUnits { get; init; }
    public required string Currency { get; init; }
    public string? AssessmentId { get; init; }
    /// <summary>Probe latency over the month (open months only): the median minute's p50 and the worst minute's p99, in ms.</summary>
    public ProbeSummary? Probes { get; init; }
    /// <summary>When the plan changed during the month: each plan's period, assessed under that plan (see <see cref="SlaAssessment.PlanPeriods"/>).</summary>
    public IReadOnlyList<SlaPlanPeriod>? PlanPeriods { get; init; }
}

/// <summary>A tenant's SLA for a month: every instance that existed in it, and the sums.</summary>
public sealed record TenantSlaReport
{
    public required string TenantId { get; init; }
    public required string Month { get; init; }
    public required long EligibleMinutes { get; init; }
    public required long GoodMinutes { get; init; }
    public required long BadMinutes { get; init; }
    public required long UnmeasuredMinutes { get; init; }
    public required long UnmeasuredProvenMinutes { get; init; }
    public required long UnmeasuredUnprovenMinutes { get; init; }
    public required long UnmeasuredPendingMinutes { get; init; }
    /// <summary>Over every instance's minutes: (good + unmeasured proven) / (eligible − pending) × 100.</summary>
    public required decimal UptimePercent { get; init; }
    public required long CreditMinorUnits { get; init; }
    public required IReadOnlyList<InstanceSlaReport> Instances { get; init; }
}

/// <summary>Measures instances' SLA from the lifecycle log, the probe minutes and the maintenance windows.</summary>
public sealed class SlaReports(
    LifecycleLog lifecycle,
    ProbeMinutes probeMinutes,
    MaintenanceWindows maintenance,
    SlaAssessments assessments,
    ITenantPlans plans,
    [FromKeyedServices(BillingClock.Key)] TimeProvider clock)
{
    /// <summary>The instance's report, or null when billing never saw it (it may be too new: ask again shortly).</summary>
    public async Task<InstanceSlaReport?> ForInstanceAsync(string tenantId, string instanceId, SlaMonth month, CancellationToken cancellationToken = default)
    {
        var timeline = await lifecycle.ReadAsync(instanceId, cancellationToken);
        return timeline is null || timeline.TenantId != tenantId
            ? null
            : await ReportAsync(timeline, month, await PlanPeriodsAsync(tenantId, month, cancellationToken), cancellationToken);
    }

    public async Task<TenantSlaReport> ForTenantAsync(string tenantId, SlaMonth month, CancellationToken cancellationToken = default)
    {
        var planPeriods = await PlanPeriodsAsync(tenantId, month, cancellationToken);
        var reports = new List<InstanceSlaReport>();
        foreach (var timeline in await lifecycle.ReadExistingAsync(month.Start, month.End, tenantId, cancellationToken))
        {
            reports.Add(await ReportAsync(timeline, month, planPeriods, cancellationToken));
        }

        var eligible = reports.Sum(report => report.EligibleMinutes);
        var good = reports.Sum(report => report.GoodMinutes);
        var proven = reports.Sum(report => report.UnmeasuredProvenMinutes);
        var pending = reports.Sum(report => report.UnmeasuredPendingMinutes);
        return new TenantSlaReport
        {
            TenantId = tenantId,
            Month = month.ToString(),
            EligibleMinutes = eligible,
            GoodMinutes = good,
            BadMinutes = reports.Sum(report => report.BadMinutes),
            UnmeasuredMinutes = reports.Sum(report => report.UnmeasuredMinutes),
            UnmeasuredProvenMinutes = proven,
            UnmeasuredUnprovenMinutes = reports.Sum(report => report.UnmeasuredUnprovenMinutes),
            UnmeasuredPendingMinutes = pending,
            UptimePercent = SlaCalculator.UptimeOf(judgedMinutes: eligible - pending, availableMinutes: good + proven),
            CreditMinorUnits = reports.Sum(report => report.CreditMinorUnits),
            Instances = reports,
        };
    }

    /// <summary>
    /// The instance's SLA within [month start, <paramref name="until"/>) under the plans in force: measured so far while
    /// the month is open, final (a gap no probe ended is unproven) once <paramref name="until"/> is its end; the
    /// assessment is stored as is when the month closes. Each plan period's minutes are measured on their own, against
    /// that plan's SLA terms, and credited on that period's charge under that plan's prices; the month's credit is the
    /// sum. So a tenant that moves to a plan with a stricter SLA is held to it only from the change on, and a credit is
    /// always a share of what the minutes it concerns cost. A gap in the probes is judged by the probes around it, across
    /// a plan change too.
    /// </summary>
    public async Task<(SlaAssessment Assessment, long PendingMinutes)> MeasureAsync(
        InstanceTimeline timeline, SlaMonth month, DateTimeOffset until, IReadOnlyList<PlanPeriod> planPeriods, CancellationToken cancellationToken = default)
    {
        var windows = await maintenance.ListAsync(timeline.TenantId, timeline.InstanceId, month.Start, until, cancellationToken);
        var probed = await probeMinutes.ProbedAsync(timeline.InstanceId, month.Start, until, cancellationToken);
        TimeRange[] excused = [.. windows.Where(window => window.Excuses).Select(window => new TimeRange(window.StartsAt, window.EndsAt))];
        var inForce = planPeriods.Within(month.Start, until);
        var measured = inForce
            .Select(period => (Period: period, Measurement: SlaCalculator.Measure(timeline, excused, probed, period.From, period.To, final: until >= month.End)))
            .ToList();
        var periods = measured.Select(period => AssessPeriod(period.Measurement, period.Period)).ToList();
        var last = periods[^1];
        var eligible = periods.Sum(period => period.EligibleMinutes);
        var good = periods.Sum(period => period.GoodMinutes);
        var proven = periods.Sum(period => period.UnmeasuredProvenMinutes);
        var pending = measured.Sum(period => period.Measurement.UnmeasuredPendingMinutes);
        var assessment = new SlaAssessment
        {
            Id = SlaAssessments.IdFor(timeline.InstanceId, month),
            TenantId = timeline.TenantId,
            InstanceId = timeline.InstanceId,
            Plan = last.Plan,
            Month = month.FirstDay,
            EligibleMinutes = eligible,
            GoodMinutes = good,
            BadMinutes = periods.Sum(period => period.BadMinutes),
            UnmeasuredProvenMinutes = proven,
            UnmeasuredUnprovenMinutes = periods.Sum(period => period.UnmeasuredUnprovenMinutes),
            MaintenanceMinutes = periods.Sum(period => period.MaintenanceMinutes),
            UptimePercent = periods.Count == 1 ? last.UptimePercent : SlaCalculator.UptimeOf(judgedMinutes: eligible - pending, availableMinutes: good + proven),
            TargetPercent = last.TargetPercent ?? 0m,
            TierBelowPercent = last.TierBelowPercent,
            CreditPercent = last.CreditPercent,
            RunningSecondsBySize = periods.Count == 1
                ? last.RunningSecondsBySize
                : periods.SelectMany(period => period.RunningSecondsBySize).GroupBy(size => size.Key, StringComparer.Ordinal)
                    .ToDictionary(size => size.Key, size => size.Sum(entry => entry.Value), StringComparer.Ordinal),
            ChargeMinorUnits = periods.Sum(period => period.ChargeMinorUnits),
            CreditMinorUnits = periods.Sum(period => period.CreditMinorUnits),
            Currency = inForce[^1].Plan.Prices.Currency,
            AssessedAt = clock.GetUtcNow(),
            PlanPeriods = periods.Count == 1 ? null : periods,
        };
        return (assessment, pending);
    }

    /// <summary>The month's assessment, as the month close stores it.</summary>
    public async Task<SlaAssessment> AssessAsync(InstanceTimeline timeline, SlaMonth month, IReadOnlyList<PlanPeriod> planPeriods, CancellationToken cancellationToken = default) =>
        (await MeasureAsync(timeline, month, month.End, planPeriods, cancellationToken)).Assessment;

    /// <summary>The plans in force over the month, in order; a tenant billing cannot find is on a plan that promises and prices nothing.</summary>
    public async Task<IReadOnlyList<PlanPeriod>> PlanPeriodsAsync(string tenantId, SlaMonth month, CancellationToken cancellationToken) =>
        await plans.GetPlanPeriodsAsync(tenantId, month.Start, month.End, cancellationToken)
            ?? [new PlanPeriod(month.Start, month.End, new BillingPlan("unknown", new PlanSlaTerms(), new PlanPrices()))];

    private static SlaPlanPeriod AssessPeriod(SlaMeasurement measurement, PlanPeriod period)
    {
        var outcome = SlaCalculator.Assess(measurement, period.Plan);
        return new SlaPlanPeriod
        {
            Plan = period.Plan.Name,
            From = period.From,
            To = period.To,
            EligibleMinutes = measurement.EligibleMinutes,
            GoodMinutes = measurement.GoodMinutes,
            BadMinutes = measurement.BadMinutes,
            UnmeasuredProvenMinutes = measurement.UnmeasuredProvenMinutes,
            UnmeasuredUnprovenMinutes = measurement.UnmeasuredUnprovenMinutes,
            MaintenanceMinutes = measurement.MaintenanceMinutes,
            UptimePercent = measurement.UptimePercent,
            TargetPercent = outcome.TargetPercent,
            TierBelowPercent = outcome.Tier?.BelowPercent,
            CreditPercent = outcome.CreditPercent,
            RunningSecondsBySize = measurement.RunningSecondsBySize,
            ChargeMinorUnits = outcome.ChargeMinorUnits,
            CreditMinorUnits = outcome.CreditMinorUnits,
        };
    }

    private async Task<InstanceSlaReport> ReportAsync(InstanceTimeline timeline, SlaMonth month, IReadOnlyList<PlanPeriod> planPeriods, CancellationToken cancellationToken)
    {
        if (await assessments.GetAsync(SlaAssessments.IdFor(timeline.InstanceId, month), cancellationToken) is { } assessed)
        {
            return Report(assessed, month, "closed", month.End) with { AssessmentId = assessed.Id };
        }

        var now = clock.GetUtcNow();
        var until = month.End < now ? month.End : now;
        var (assessment, pending) = await MeasureAsync(timeline, month, until, planPeriods, cancellationToken);
        return Report(assessment, month, "open", until) with
        {
            UnmeasuredPendingMinutes = pending,
            UnmeasuredMinutes = assessment.UnmeasuredProvenMinutes + assessment.UnmeasuredUnprovenMinutes + pending,
            Probes = await probeMinutes.SummarizeAsync(timeline.InstanceId, month.Start, until, cancellationToken),
        };
    }

    /// <summary>A stored or would-be assessment as a report; an assessment has nothing pending (a closed month judged every gap).</summary>
    private static InstanceSlaReport Report(SlaAssessment assessed, SlaMonth month, string status, DateTimeOffset measuredUntil) => new()
    {
        InstanceId = assessed.InstanceId,
        TenantId = assessed.TenantId,
        Month = month.ToString(),
        Plan = assessed.Plan,
        Status = status,
        MeasuredUntil = measuredUntil,
        EligibleMinutes = assessed.EligibleMinutes,
        GoodMinutes = assessed.GoodMinutes,
        BadMinutes = assessed.BadMinutes,
        UnmeasuredMinutes = assessed.UnmeasuredProvenMinutes + assessed.UnmeasuredUnprovenMinutes,
        UnmeasuredProvenMinutes = assessed.UnmeasuredProvenMinutes,
        UnmeasuredUnprovenMinutes = assessed.UnmeasuredUnprovenMinutes,
        UnmeasuredPendingMinutes = 0,
        MaintenanceMinutes = assessed.MaintenanceMinutes,
        UptimePercent = assessed.UptimePercent,
        TargetPercent = assessed.TargetPercent == 0 ? null : assessed.TargetPercent,
        TierBelowPercent = assessed.TierBelowPercent,
        CreditPercent = assessed.CreditPercent,
        ChargeMinorUnits = assessed.ChargeMinorUnits,
        CreditMinorUnits = assessed.CreditMinorUnits,
        Currency = assessed.Currency,
        PlanPeriods = assessed.PlanPeriods,
    };
}
