using System.Collections.Immutable;
using ControlPlane.Errors;
using ControlPlane.Operations;
using Provisioner.Deployments;
using Provisioner.Messaging;

namespace ControlPlane.Instances;

/// <summary>What a change asks the grain to send once it is stored: an apply of the current spec for this purpose, if any.</summary>
public sealed record ChangeResult(bool Changed, ApplyPurpose? Apply = null, string? OperationId = null, bool OperationEnded = false)
{
    public static ChangeResult None { get; } = new(false);
}

/// <summary>
/// Carries out on an instance's state what <see cref="InstanceLifecycleTable"/> decided: a verb's operation begins, a
/// phase ends (rolling back, cleaning up, completing), a check's outcome is recorded (repair, liveness restart, crash
/// loop). Plain code over <see cref="InstanceState"/>: the grain stores the result and sends what it says.
/// </summary>
public sealed class InstanceTransitions(ReconcileOptions reconcile, RetentionOptions retention)
{
    /// <summary>A new instance's state for a create: nothing deployed yet; the grain seals its new passwords in.</summary>
    public static InstanceState NewInstance(string id, InstanceCommand command, DateTimeOffset now) => new()
    {
        Id = id,
        TenantId = command.TenantId,
        Name = command.Name!,
        Product = command.Product!,
        Backend = command.Backend!,
        Version = command.Version!,
        Size = command.Size!,
        Tls = command.Tls,
        Desired = new DesiredDeployment(command.Version!, command.Size!, DeploymentGoal.Running),
        CreatedAt = now,
        UpdatedAt = now,
        AuditedEventSequence = 0,
    };

    /// <summary>Starts <paramref name="verb"/>'s operation: the table allowed it (from <paramref name="before"/>, null for a create).</summary>
    public OperationRecord Begin(InstanceState state, InstanceVerb verb, InstanceCommand command, InstanceLifecycle? before, DateTimeOffset now)
    {
        var decision = InstanceLifecycleTable.Decide(before, LifecycleTrigger.For(verb.Type), state.Context(), state.Id)!;
        var desired = verb.Desire(state.Desired, command);
        if (verb.Type is OperationType.Scale or OperationType.Upgrade && desired == state.Desired)
        {
            throw Problems.NoChange(state.Id, $"already runs version {state.Version} at size {state.Size}.");
        }

        var operation = new OperationRecord
        {
            Id = command.OperationId,
            TenantId = state.TenantId,
            InstanceId = state.Id,
            Type = verb.Type,
            Status = OperationStatus.Pending,
            RequestedBy = command.RequestedBy,
            CreatedAt = now,
            UpdatedAt = now,
            Parameters = command.Parameters().ToImmutableSortedDictionary(StringComparer.Ordinal),
            Cancellable = verb.NotCancellableBecause is null,
            Log = [new OperationLogEntry { At = now, Message = $"{verb.Type} requested by {command.RequestedBy}." }],
        };
        state.Active = new ActiveOperation { OperationId = operation.Id, Verb = verb.Type, StateBefore = before, RollbackTo = before is null ? null : state.Desired };
        state.Desired = desired;
        state.Generation++;
        state.Lifecycle = decision.Next;
        state.LastOperationId = operation.Id;
        state.Operations.Add(operation);
        state.UpdatedAt = now;
        InstanceHistory.Record(state, now, "operation-started", $"{verb.Type} requested by {command.RequestedBy}.", operation.Id);
        return operation;
    }

    /// <summary>
    /// The backend reports a later generation than this instance ever sent: its state is older than the deployment (a
    /// database restored from a backup, or an event nobody should have sent). The backend ignores a lower generation, so
    /// nothing the instance asks would ever be done (a delete would not delete): it says so on the instance and in the
    /// log, and moves past the backend's generation, so what it wants now is sent again and carried out.
    /// </summary>
    public bool CatchUpWithBackend(InstanceState state, ObservedDeployment observed, DateTimeOffset now)
    {
        if (observed.Generation <= state.Generation || observed.Generation >= long.MaxValue - 1)
        {
            return false;
        }

        var behind = state.Generation;
        state.Generation = observed.Generation + 1;
        state.UpdatedAt = now;
        InstanceHistory.Record(
            state,
            now,
            "generation-behind",
            $"The {state.Backend} backend has deployed generation {observed.Generation}, but this instance's state only knew generation {behind}: " +
            $"it is older than the deployment (restored from a backup?). What the instance wants now ({Describe(state.Desired)}) is sent again as generation {state.Generation}.",
            state.Active?.OperationId);
        return true;
    }

    /// <summary>The current phase of the active operation ended with <paramref name="outcome"/>: roll back, clean up or complete.</summary>
    public ChangeResult EndPhase(InstanceState state, OperationRecord operation, PhaseOutcome outcome, DateTimeOffset now)
    {
        var active = state.Active!;
        if (outcome.Observed is { } ahead && CatchUpWithBackend(state, ahead, now))
        {
            // The backend did nothing for this phase (it ignores a generation below its own): the phase starts over.
            state.Replace(operation.WithLog(now, $"The backend had deployed a later generation ({ahead.Generation}) than this instance knew; sent again as generation {state.Generation}."));
            OperationProgress.BeginPhase(active, active.Phase, active.StepOffset);
            return new(true, active.Phase, operation.Id);
        }

        var rollingBack = active.Phase == ApplyPurpose.Rollback;
        if (outcome.Observed is { } observed)
        {
            state.Observe(observed, outcome.ObservedAt, reconcile.DegradedLatency);
            ReconcileSchedule.ObservedByOperation(state, observed);
        }

        var decision = InstanceLifecycleTable.Decide(state.Lifecycle, outcome.Trigger, state.Context(), state.Id)
            ?? throw new InvalidOperationException($"The lifecycle table has no row for {state.Lifecycle} + {outcome.Trigger} during {active.Verb}.");
        var verb = InstanceLifecycleTable.Verb(active.Verb);
        state.Lifecycle = decision.Next;
        state.UpdatedAt = now;
        if (decision.Sends == Sends.ApplyRollback)
        {
            active.RollbackCause = outcome.Error;
            state.Desired = active.RollbackTo ?? state.Desired with { Goal = DeploymentGoal.Absent };
            state.Generation++;
            var why = outcome.Error is { } failure ? $"Failed: {failure.Message} " : "";
            state.Replace(operation.WithLog(now, $"{why}Rolling back to {Describe(state.Desired)}.") with { Cancellable = false });
            OperationProgress.BeginPhase(active, ApplyPurpose.Rollback, operation.Steps.Length);
            return new(true, ApplyPurpose.Rollback, operation.Id);
        }

        if (decision.OperationEnds is not { } status)
        {
            state.Replace(operation);
            return new(true);
        }

        var error = EndError(state, outcome, active, rollingBack, status);
        if (status == OperationStatus.Succeeded)
        {
            (state.Version, state.Size, state.FailureReason, state.FailureCode) = (state.Desired.Version, state.Desired.Size, null, null);
            if (operation.Status == OperationStatus.Cancelling)
            {
                operation = operation.WithLog(now, "The operation completed before the cancellation could take effect.");
            }
        }
        else if (decision.Next == InstanceLifecycle.Failed && error is not null)
        {
            state.FailureCode = error.Code;
            state.FailureReason = verb.Type == OperationType.Delete ? $"Delete failed: {error.Message} Retry the delete." : error.Message;
        }
        else if (verb.OnFailure == FailurePolicy.KeepWhatServes && !rollingBack)
        {
            state.Desired = state.Desired with { Goal = decision.Next == InstanceLifecycle.Running ? DeploymentGoal.Running : DeploymentGoal.Stopped };
            state.Generation++;
        }

        ApplyPurpose? cleanup = null;
        if (decision.Sends == Sends.ApplyCleanup && verb.GoalAfterFailure is { } goal)
        {
            state.Desired = state.Desired with { Goal = goal };
            state.Generation++;
            cleanup = ApplyPurpose.Reconcile;
        }

        Complete(state, operation, status, error, now);
        return new(true, cleanup, OperationEnded: true);
    }

    /// <summary>A check of the deployment came back: record what a person would notice; restart a hung process; give up on a crash loop.</summary>
    public ChangeResult Check(InstanceState state, ProvisioningEvent outcome, ReconcileSchedule schedule, DateTimeOffset now)
    {
        var (observed, detail, failed) = outcome switch
        {
            DeploymentFailed failure => (failure.Observed, failure.ErrorMessage, true),
            DeploymentApplied applied => (applied.Observed, applied.Drift, false),
            _ => throw new ArgumentOutOfRangeException(nameof(outcome), outcome.GetType().Name, "Only an outcome ends a check."),
        };
        if (CatchUpWithBackend(state, observed, now))
        {
            return new(true, ApplyPurpose.Reconcile);
        }

        var (healthBefore, startsBefore) = (state.Health, state.ProcessStarts);
        state.Observe(observed, outcome.OccurredAt, reconcile.DegradedLatency);
        if (!InstanceLifecycleTable.IsReconciled(state.Lifecycle))
        {
            // What a failure left behind was cleaned up; the observation only says what is there now.
            return new(healthBefore != state.Health);
        }

        var (verdict, backoff) = schedule.OnChecked(now, state, observed, detail, failed);
        var repairs = outcome is DeploymentApplied { Repairs.Count: > 0 } repaired ? repaired.Repairs : [];
        if (failed)
        {
            (state.Health, state.HealthDetail) = (InstanceHealth.Unhealthy, detail);
            InstanceHistory.Record(state, now, "repair-failed", $"{detail} Next attempt in {backoff.TotalSeconds:0} s.");
        }
        else if (repairs.Count > 0)
        {
            InstanceHistory.Record(state, now, "repaired", $"{detail ?? "The deployment drifted from its spec."} Repaired: {string.Join("; ", repairs)}.");
        }
        else if (healthBefore != state.Health)
        {
            InstanceHistory.Record(state, now, "health-changed", $"Health is {state.Health.ToString().ToLowerInvariant()}: {state.HealthDetail}");
        }
        else if (verdict == CheckVerdict.Nothing && startsBefore == state.ProcessStarts)
        {
            // Nothing a person would notice changed; the fresh detail is served from memory without a write.
            return ChangeResult.None;
        }

        state.UpdatedAt = now;
        switch (verdict)
        {
            case CheckVerdict.Restart:
                state.Desired = state.Desired with { Restarts = state.Desired.Restarts + 1 };
                state.Generation++;
                InstanceHistory.Record(state, now, "liveness-restart",
                    $"The process runs but has not answered an authenticated PING for {reconcile.LivenessTimeout.TotalSeconds:0} s; restarting it (data and port kept).");
                return new(true, ApplyPurpose.Reconcile);

            case CheckVerdict.CrashLoop:
                state.Lifecycle = InstanceLifecycleTable.Decide(state.Lifecycle, LifecycleTrigger.CrashLoop, LifecycleContext.Idle, state.Id)!.Next;
                state.FailureCode = "crash-loop";
                state.FailureReason = $"The process was restarted {state.RecentRestarts.Count} times within {reconcile.CrashLoopWindow.TotalMinutes:0.#} min " +
                    $"and kept failing; it is stopped with its data kept. Start it again once the cause is fixed. First crash: {state.RecentRestarts[0].Detail}";
                state.Desired = state.Desired with { Goal = DeploymentGoal.Stopped };
                state.Generation++;
                state.RecentRestarts.Clear();
                InstanceHistory.Record(state, now, "crash-loop", state.FailureReason);
                return new(true, ApplyPurpose.Reconcile);

            default:
                return new(true);
        }
    }

    /// <summary>Marks the active <paramref name="operation"/> cancelling, when the table allows it; the caller sends the cancellation.</summary>
    public static OperationRecord Cancel(InstanceState state, OperationRecord operation, string requestedBy, DateTimeOffset now)
    {
        if (!operation.IsActive)
        {
            throw Problems.NotCancellable(operation.Id, $"it has already finished ({operation.Status.ToString().ToLowerInvariant()}).");
        }

        InstanceLifecycleTable.Decide(state.Lifecycle, LifecycleTrigger.Cancel, state.Context(), state.Id);
        return state.Replace(operation.WithLog(now, $"Cancellation requested by {requestedBy}.") with { Status = OperationStatus.Cancelling });
    }

    /// <summary>
    /// A command was moved to the dead-letter topic. When it was the active phase's, nothing will carry it out: the
    /// phase ends as a failure (rolling back where that applies), which the caller carries out. Otherwise it is recorded
    /// on the operation it served, or as an instance event.
    /// </summary>
    public static (string What, (OperationRecord Operation, PhaseOutcome Outcome)? EndsPhase) DeadLettered(InstanceState state, DeadLetteredCommand deadLetter, DateTimeOffset now)
    {
        var what = $"A {deadLetter.Kind ?? "provisioning"} command" + (deadLetter.Generation is { } generation ? $" for generation {generation}" : "")
            + $" was moved to the dead-letter topic '{deadLetter.Topic}': {deadLetter.Reason}";
        var operation = deadLetter.OperationId is { } operationId ? state.FindOperation(operationId) : null;
        if (operation is not null && operation.Id == state.Active?.OperationId && deadLetter.Kind != "cancel"
            && (deadLetter.Generation ?? state.Generation) == state.Generation && (deadLetter.Purpose ?? state.Active.Phase) == state.Active.Phase)
        {
            InstanceHistory.Record(state, now, "command-dead-lettered", what, operation.Id);
            return (what, (operation.WithLog(now, what), new PhaseOutcome(PhaseOutcomeKind.Failed, null, now, new OperationError
            {
                Code = "command-dead-lettered",
                Message = $"The provisioner could not carry out this operation's command: {deadLetter.Reason} Fix that, then retry the operation.",
            })));
        }

        if (operation is null)
        {
            InstanceHistory.Record(state, now, "command-dead-lettered", what);
        }
        else
        {
            state.Replace(operation.WithLog(now, operation.IsActive && deadLetter.Kind == "cancel"
                ? $"{what} The cancellation did not reach the provisioner; the operation goes on."
                : $"{what} It changes nothing: the operation has moved past that command."));
        }

        state.UpdatedAt = now;
        return (what, null);
    }

    private void Complete(InstanceState state, OperationRecord operation, OperationStatus status, OperationError? error, DateTimeOffset now)
    {
        operation = state.Replace(operation.Completed(status, now, error).WithLog(now, $"Operation {status.ToString().ToLowerInvariant()}."));
        state.Active = null;
        var summary = $"{operation.Type} {status.ToString().ToLowerInvariant()}" + (error is null ? "." : $": {error.Message}");
        InstanceHistory.Record(state, now, $"operation-{status.ToString().ToLowerInvariant()}", summary, operation.Id);
        InstanceHistory.PruneOperations(state, now, retention);
        if (state.Lifecycle == InstanceLifecycle.Deleted)
        {
            (state.DeletedAt, state.Endpoint, state.ProbeEndpoint, state.Health, state.HealthDetail) = (now, null, null, InstanceHealth.Unknown, null);
            (state.Password, state.SealedPassword, state.SealedPlatformPassword) = (null, null, null);
        }
    }

    private static OperationError? EndError(InstanceState state, PhaseOutcome outcome, ActiveOperation active, bool rollingBack, OperationStatus status) => status switch
    {
        OperationStatus.Succeeded or OperationStatus.Cancelled => null,
        _ when !rollingBack => outcome.Error,
        _ when outcome.Kind == PhaseOutcomeKind.Converged && active.RollbackCause is { } cause =>
            cause with { Message = $"{cause.Message} The instance was rolled back to {Describe(state.Desired)}." },
        _ => new OperationError
        {
            Code = active.RollbackCause?.Code ?? outcome.Error?.Code ?? "rollback-failed",
            Message = $"{active.RollbackCause?.Message ?? "The operation was cancelled."} Rolling back also failed: {outcome.Error?.Message}",
        },
    };

    private static string Describe(DesiredDeployment desired) => desired.Goal switch
    {
        DeploymentGoal.Absent => "nothing deployed",
        DeploymentGoal.Stopped => $"version {desired.Version}, size {desired.Size}, stopped",
        _ => $"version {desired.Version}, size {desired.Size}, running",
    };
}
