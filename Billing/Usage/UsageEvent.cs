namespace Billing.Usage;

/// <summary>
/// One measured quantity of one billing dimension, as its source saw it. The ledger keeps each
/// <see cref="SourceEventId"/> once: a source that retries, or is replayed after a restart, reports the same id.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record UsageEvent
{
    /// <summary>Stable and unique per measurement, e.g. <c>ins-…:instance-hours:2026-11-27T10:00Z</c>.</summary>
    [Id(0)] public required string SourceEventId { get; init; }
    [Id(1)] public required string TenantId { get; init; }
    [Id(2)] public required string InstanceId { get; init; }
    /// <summary>A billing dimension (a Stripe meter), e.g. <c>instance_seconds_small</c>, <c>operations</c>.</summary>
    [Id(3)] public required string Meter { get; init; }
    /// <summary>Whole units of the meter; negative only in a compensating correction.</summary>
    [Id(4)] public required long Quantity { get; init; }
    /// <summary>When the usage happened (it is billed in the hour that contains it), not when it was recorded.</summary>
    [Id(5)] public required DateTimeOffset OccurredAt { get; init; }
    /// <summary>For a correction: the source event it compensates.</summary>
    [Id(6)] public string? Corrects { get; init; }
}

/// <summary>The append-only usage ledger: rows are never updated; a correction is another row.</summary>
public interface IUsageLedger
{
    /// <summary>Appends the events whose source ids the ledger has not seen; answers how many were new.</summary>
    Task<int> AppendAsync(IReadOnlyCollection<UsageEvent> events, CancellationToken cancellationToken = default);
}
