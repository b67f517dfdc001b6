using ControlPlane.Operations;

namespace ControlPlane.Instances;

/// <summary>
/// What an instance remembers, bounded: its events (the newest <see cref="MaxEvents"/>) and its operations (the last
/// <see cref="RetentionOptions.Operations"/> and every one younger than <see cref="RetentionOptions.OperationAge"/>).
/// The audit log, not grain state, is the permanent record.
/// </summary>
public static class InstanceHistory
{
    public const int MaxEvents = 200;

    public static void Record(InstanceState state, DateTimeOffset at, string kind, string message, string? operationId = null)
    {
        state.Events.Add(new InstanceEvent { At = at, Kind = kind, Message = message, OperationId = operationId, Sequence = ++state.EventSequence });
        if (state.Events.Count > MaxEvents)
        {
            state.Events.RemoveRange(0, state.Events.Count - MaxEvents);
        }
    }

    /// <summary>Forgets finished operations beyond both bounds; the running one is always kept.</summary>
    public static void PruneOperations(InstanceState state, DateTimeOffset now, RetentionOptions retention)
    {
        var excess = state.Operations.Count - retention.Operations;
        if (excess <= 0)
        {
            return;
        }

        var prunable = state.Operations
            .OrderBy(operation => operation.CreatedAt)
            .Take(excess)
            .Where(operation => !operation.IsActive && now - operation.CreatedAt > retention.OperationAge)
            .Select(operation => operation.Id)
            .ToHashSet(StringComparer.Ordinal);
        state.Operations.RemoveAll(operation => prunable.Contains(operation.Id));
    }
}
