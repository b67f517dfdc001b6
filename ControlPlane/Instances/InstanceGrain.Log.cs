using ControlPlane.Operations;

namespace ControlPlane.Instances;

/// <summary>What the instance grain logs: structured, and never a secret.</summary>
public sealed partial class InstanceGrain
{
    [LoggerMessage(Level = LogLevel.Information, Message = "Operation {OperationId} ({OperationType}) started on instance {InstanceId}")]
    private partial void LogOperationStarted(string operationId, OperationType operationType, string instanceId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Operation {OperationId} on instance {InstanceId} ended; instance is {Lifecycle}")]
    private partial void LogOperationCompleted(string operationId, string instanceId, InstanceLifecycle lifecycle);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Instance {InstanceId}: {EventKind}: {Message}")]
    private partial void LogChecked(string instanceId, string eventKind, string message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not store the state of instance {InstanceId}; nothing changed and nothing was sent")]
    private partial void LogWriteFailed(Exception exception, string instanceId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not send provisioning commands of instance {InstanceId} ({Count} waiting); retrying with the reconcile timer")]
    private partial void LogSendFailed(Exception exception, string instanceId, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Instance {InstanceId}: {Message}")]
    private partial void LogDeadLettered(string instanceId, string message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not tell billing about instance {InstanceId}; retrying on the next reconcile")]
    private partial void LogBillingNoticeFailed(Exception exception, string instanceId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not write the audit record of a change instance {InstanceId} made itself; retrying on the next reconcile")]
    private partial void LogAuditFailed(Exception exception, string instanceId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Instance {InstanceId}: stored passwords sealed or re-wrapped with the current key version")]
    private partial void LogSecretsMigrated(string instanceId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Instance {InstanceId} was deleted longer ago than its retention; its state is removed")]
    private partial void LogPruned(string instanceId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Instance {InstanceId} ignored a {EventType}: {Why}")]
    private partial void LogIgnoredEvent(string instanceId, string eventType, string why);
}
