using System.Text.Json;
using ControlPlane.Auditing;

namespace ControlPlane.Instances;

/// <summary>
/// The changes the control plane makes to an instance on its own (a repair of drift, a liveness restart, a stop after
/// a crash loop, the end of an operation a person started, a command the bus gave up on, the removal of a deleted
/// instance's state) go to the audit log as the actor <c>system</c>. Each comes from an event stored with the change
/// itself, so the change and its record cannot part: the record is written after the state, from the stored event,
/// and again after a crash until it is in the log, at most once (its request id is the instance and event sequence).
/// </summary>
public static class SystemChanges
{
    public const string Actor = "system";

    /// <summary>The audit record an instance event stands for, or null for an event that changed nothing (a health reading, an operation's start: its request is audited).</summary>
    public static AuditEntry? For(InstanceState state, InstanceEvent instanceEvent)
    {
        var (action, outcome) = instanceEvent.Kind switch
        {
            "repaired" => ("instance.repair", "succeeded"),
            "liveness-restart" => ("instance.restart.liveness", "succeeded"),
            "crash-loop" => ("instance.stop.crash-loop", "succeeded"),
            "command-dead-lettered" => ("instance.command.dead-letter", "failed:dead-lettered"),
            "operation-succeeded" or "operation-failed" or "operation-cancelled" => OperationEnd(state, instanceEvent),
            _ => (null, null),
        };
        return action is null
            ? null
            : new AuditEntry(Actor, state.TenantId, action, state.Id, outcome!, instanceEvent.Message)
            {
                RequestId = RequestId(state.Id, instanceEvent.Sequence),
                After = JsonSerializer.Serialize(new
                {
                    lifecycle = state.Lifecycle.ToString(),
                    version = state.Version,
                    size = state.Size,
                    operationId = instanceEvent.OperationId,
                    eventAt = instanceEvent.At,
                }),
            };
    }

    /// <summary>The record that a deleted instance's retained state is removed, written before it goes.</summary>
    public static AuditEntry StateRemoved(InstanceState state, TimeSpan retention) =>
        new(Actor, state.TenantId, "instance.state.remove", state.Id, "succeeded",
            $"Deleted at {state.DeletedAt:O}; its state is kept {retention.TotalDays:0.#} days after deletion, and that has passed.")
        {
            RequestId = $"{state.Id}#state-removed",
        };

    /// <summary>Every stored event past the last one audited whose record is due, oldest first.</summary>
    public static IEnumerable<(InstanceEvent Event, AuditEntry? Entry)> Due(InstanceState state) =>
        state.Events
            .Where(instanceEvent => instanceEvent.Sequence > (state.AuditedEventSequence ?? state.EventSequence))
            .OrderBy(instanceEvent => instanceEvent.Sequence)
            .Select(instanceEvent => (instanceEvent, For(state, instanceEvent)));

    private static string RequestId(string instanceId, long sequence) => $"{instanceId}#event-{sequence}";

    private static (string, string) OperationEnd(InstanceState state, InstanceEvent instanceEvent)
    {
        var operation = instanceEvent.OperationId is { } id ? state.FindOperation(id) : null;
        var verb = operation?.Type.ToString().ToLowerInvariant() ?? "operation";
        var outcome = instanceEvent.Kind switch
        {
            "operation-succeeded" => "succeeded",
            "operation-cancelled" => "cancelled",
            _ => $"failed:{operation?.Error?.Code ?? "unknown"}",
        };
        return ($"instance.{verb}.complete", outcome);
    }
}
