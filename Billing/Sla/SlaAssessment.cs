namespace Billing.Sla;

/// <summary>
/// One instance's SLA for one closed month, stored once and never changed: the inputs, the result and the
/// credit it earns. Applying the credit to Stripe refers to <see cref="Id"/>, so it happens at most once.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record SlaAssessment
{
    /// <summary>Deterministic: <c>sla:{instanceId}:{yyyy-MM}</c>.</summary>
    [Id(0)] public required string Id { get; init; }
    [Id(1)] public required string TenantId { get; init; }
    [Id(2)] public required string InstanceId { get; init; }
    [Id(3)] public required string Plan { get; init; }
    /// <summary>First day of the month, UTC.</summary>
    [Id(4)] public required DateOnly Month { get; init; }
    /// <summary>Good, bad and unmeasured (proven or unproven) together.</summary>
    [Id(5)] public required long EligibleMinutes { get; init; }
    /// <summary>Probed, and more than half the probes failed.</summary>
    [Id(6)] public required long BadMinutes { get; init; }
    /// <summary>(good + unmeasured proven) / eligible × 100; 100 when nothing was eligible.</summary>
    [Id(7)] public required decimal UptimePercent { get; init; }
    [Id(8)] public required decimal TargetPercent { get; init; }
    /// <summary>Share of the month's charge credited, e.g. 10 for 10 %; 0 when the target was met.</summary>
    [Id(9)] public required decimal CreditPercent { get; init; }
    /// <summary>The month's charge for this instance the credit applies to, in the currency's minor unit.</summary>
    [Id(10)] public required long ChargeMinorUnits { get; init; }
    [Id(11)] public required long CreditMinorUnits { get; init; }
    [Id(12)] public required string Currency { get; init; }
    [Id(13)] public required DateTimeOffset AssessedAt { get; init; }
    /// <summary>The credit tier's threshold (the uptime was below it), or null when no tier applies.</summary>
    [Id(14)] public decimal? TierBelowPercent { get; init; }
    /// <summary>Minutes the SLA would have counted but announced maintenance took out.</summary>
    [Id(15)] public long MaintenanceMinutes { get; init; }
    /// <summary>Seconds in Running during the month, per size: what <see cref="ChargeMinorUnits"/> was computed from.</summary>
    [Id(16)] public IReadOnlyDictionary<string, long> RunningSecondsBySize { get; init; } = new Dictionary<string, long>();
    /// <summary>
    /// Probed and not bad. Assessed before unmeasured minutes were told apart, every minute not bad was counted good:
    /// such an assessment reads back with eligible − bad here and no unmeasured minutes.
    /// </summary>
    [Id(17)] public long GoodMinutes { get; init; }
    /// <summary>Not probed (the control plane was down), and the instance's process demonstrably ran throughout: available.</summary>
    [Id(18)] public long UnmeasuredProvenMinutes { get; init; }
    /// <summary>Not probed, and nothing proves the instance served: counted as unavailable.</summary>
    [Id(19)] public long UnmeasuredUnprovenMinutes { get; init; }
    /// <summary>
    /// When the plan changed during the month: each plan's period, assessed on its own. The month's minutes, uptime,
    /// charge and credit are then the periods' sums; <see cref="Plan"/>, the target and the tier are those of the last
    /// period. Null when one plan was in force throughout.
    /// </summary>
    [Id(20)] public IReadOnlyList<SlaPlanPeriod>? PlanPeriods { get; init; }
}

/// <summary>One plan's part of an instance's month: its minutes measured against that plan's SLA, credited on that plan's charge.</summary>
[GenerateSerializer, Immutable]
public sealed record SlaPlanPeriod
{
    [Id(0)] public required string Plan { get; init; }
    [Id(1)] public required DateTimeOffset From { get; init; }
    [Id(2)] public required DateTimeOffset To { get; init; }
    [Id(3)] public required long EligibleMinutes { get; init; }
    [Id(4)] public required long BadMinutes { get; init; }
    [Id(5)] public required long MaintenanceMinutes { get; init; }
    [Id(6)] public required decimal UptimePercent { get; init; }
    /// <summary>Null when the plan has no SLA.</summary>
    [Id(7)] public decimal? TargetPercent { get; init; }
    [Id(8)] public decimal? TierBelowPercent { get; init; }
    [Id(9)] public required decimal CreditPercent { get; init; }
    [Id(10)] public required IReadOnlyDictionary<string, long> RunningSecondsBySize { get; init; }
    [Id(11)] public required long ChargeMinorUnits { get; init; }
    [Id(12)] public required long CreditMinorUnits { get; init; }
    [Id(13)] public long GoodMinutes { get; init; }
    [Id(14)] public long UnmeasuredProvenMinutes { get; init; }
    [Id(15)] public long UnmeasuredUnprovenMinutes { get; init; }
}
