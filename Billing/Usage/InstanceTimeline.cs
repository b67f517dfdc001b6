namespace Billing.Usage;

/// <summary>One recorded lifecycle change; <see cref="At"/> is whole seconds, so every duration derived from it is too.</summary>
public sealed record LifecycleChange(DateTimeOffset At, MeteredState State, string Size);

/// <summary>A time interval, start inclusive, end exclusive.</summary>
public readonly record struct TimeRange(DateTimeOffset Start, DateTimeOffset End)
{
    public TimeRange Clip(DateTimeOffset from, DateTimeOffset to) =>
        new(Start < from ? from : Start, End > to ? to : End);

    public bool IsEmpty => End <= Start;
}

/// <summary>
/// An instance's recorded lifecycle, in order: the single source of both its instance-hours and which of its minutes
/// the SLA counts. Each state lasts from its change until the next one (the last until now).
/// </summary>
public sealed class InstanceTimeline(string instanceId, string tenantId, IReadOnlyList<LifecycleChange> changes)
{
    public string InstanceId { get; } = instanceId;

    public string TenantId { get; } = tenantId;

    public IReadOnlyList<LifecycleChange> Changes { get; } = changes;

    public DateTimeOffset? FirstRecordedAt => Changes.Count == 0 ? null : Changes[0].At;

    /// <summary>When it was deleted, or null while it exists.</summary>
    public DateTimeOffset? DeletedAt => Changes.FirstOrDefault(change => change.State == MeteredState.Deleted)?.At;

    /// <summary>Whole seconds spent in Running within [from, to), per size.</summary>
    public IReadOnlyDictionary<string, long> RunningSecondsBySize(DateTimeOffset from, DateTimeOffset to)
    {
        var seconds = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var (change, range) in Periods(to))
        {
            var clipped = range.Clip(from, to);
            if (change.State == MeteredState.Running && !clipped.IsEmpty)
            {
                seconds[change.Size] = seconds.GetValueOrDefault(change.Size) + (long)(clipped.End - clipped.Start).TotalSeconds;
            }
        }

        return seconds;
    }

    /// <summary>
    /// When the SLA counts, within [from, to): from the first Running on, while Running or Failed (a failure the platform
    /// owes), never while the customer stopped or changed it, nor once deleted. Adjacent periods are merged.
    /// </summary>
    public IReadOnlyList<TimeRange> SlaRanges(DateTimeOffset from, DateTimeOffset to)
    {
        var ranges = new List<TimeRange>();
        var servedOnce = false;
        foreach (var (change, range) in Periods(to))
        {
            servedOnce |= change.State == MeteredState.Running;
            var clipped = range.Clip(from, to);
            if (!servedOnce || change.State is not (MeteredState.Running or MeteredState.Failed) || clipped.IsEmpty)
            {
                continue;
            }

            if (ranges.Count > 0 && ranges[^1].End == clipped.Start)
            {
                ranges[^1] = ranges[^1] with { End = clipped.End };
            }
            else
            {
                ranges.Add(clipped);
            }
        }

        return ranges;
    }

    private IEnumerable<(LifecycleChange Change, TimeRange Range)> Periods(DateTimeOffset until)
    {
        for (var i = 0; i < Changes.Count; i++)
        {
            var end = i + 1 < Changes.Count ? Changes[i + 1].At : until;
            if (end > Changes[i].At)
            {
                yield return (Changes[i], new TimeRange(Changes[i].At, end));
            }
        }
    }
}
