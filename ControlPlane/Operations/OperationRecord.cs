using System.Collections.Immutable;

namespace ControlPlane.Operations;

public enum OperationType
{
    Create,
    Scale,
    Upgrade,
    Stop,
    Start,
    Delete,
    Restart,
    RotateCredentials,
}

public enum OperationStatus
{
    Pending,
    Running,
    Cancelling,
    Succeeded,
    Failed,
    Cancelled,
}

public enum StepStatus
{
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// <summary>Its worker stopped (crashed, restarted) before finishing it; the command ran again and its steps follow.</summary>
    Interrupted,
}

[GenerateSerializer, Immutable]
public sealed record OperationStep
{
    [Id(0)] public required string Name { get; init; }
    [Id(1)] public required StepStatus Status { get; init; }
    [Id(2)] public DateTimeOffset? StartedAt { get; init; }
    [Id(3)] public DateTimeOffset? CompletedAt { get; init; }
}

[GenerateSerializer, Immutable]
public sealed record OperationLogEntry
{
    [Id(0)] public required DateTimeOffset At { get; init; }
    [Id(1)] public required string Message { get; init; }
}

[GenerateSerializer, Immutable]
public sealed record OperationError
{
    /// <summary>Stable and machine-readable, e.g. <c>process-exited</c>, <c>startup-timeout</c>.</summary>
    [Id(0)] public required string Code { get; init; }
    /// <summary>What happened and what to do about it.</summary>
    [Id(1)] public required string Message { get; init; }
}

/// <summary>
/// One mutation of one instance: what was asked, by whom, how far it got and how it ended. Owned by the
/// instance's grain and changed only there; everything else sees copies.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record OperationRecord
{
    [Id(0)] public required string Id { get; init; }
    [Id(1)] public required string TenantId { get; init; }
    [Id(2)] public required string InstanceId { get; init; }
    [Id(3)] public required OperationType Type { get; init; }
    [Id(4)] public required OperationStatus Status { get; init; }
    [Id(5)] public required string RequestedBy { get; init; }
    [Id(6)] public required DateTimeOffset CreatedAt { get; init; }
    [Id(7)] public required DateTimeOffset UpdatedAt { get; init; }
    [Id(8)] public DateTimeOffset? CompletedAt { get; init; }
    /// <summary>What the request asked for, e.g. <c>size</c> and <c>version</c> for a scale.</summary>
    [Id(9)] public ImmutableSortedDictionary<string, string> Parameters { get; init; } = ImmutableSortedDictionary<string, string>.Empty;
    [Id(10)] public ImmutableArray<OperationStep> Steps { get; init; } = [];
    [Id(11)] public ImmutableArray<OperationLogEntry> Log { get; init; } = [];
    [Id(12)] public OperationError? Error { get; init; }
    /// <summary>False once the operation passed a point it cannot be rolled back from.</summary>
    [Id(13)] public bool Cancellable { get; init; } = true;
    /// <summary>How many steps the backend planned, once it has said; 0 before the first step starts.</summary>
    [Id(14)] public int TotalSteps { get; init; }
    /// <summary>Lines left out of the middle of a long log (an operation stalled for hours); the first and the latest are kept.</summary>
    [Id(15)] public int OmittedLogEntries { get; init; }

    /// <summary>The most log lines an operation keeps: its first <see cref="KeptFirstLogEntries"/> and the latest.</summary>
    public const int MaxLogEntries = 100;
    private const int KeptFirstLogEntries = 10;

    public bool IsActive => Status is OperationStatus.Pending or OperationStatus.Running or OperationStatus.Cancelling;

    public OperationRecord WithLog(DateTimeOffset at, string message)
    {
        var log = Log.Add(new OperationLogEntry { At = at, Message = message });
        var omitted = OmittedLogEntries;
        if (log.Length > MaxLogEntries)
        {
            log = log.RemoveAt(KeptFirstLogEntries);
            omitted++;
        }

        return this with { Log = log, OmittedLogEntries = omitted, UpdatedAt = at };
    }

    public OperationRecord Completed(OperationStatus status, DateTimeOffset at, OperationError? error = null) =>
        this with { Status = status, CompletedAt = at, UpdatedAt = at, Error = error ?? Error, Cancellable = false };
}
