using System.Collections.Immutable;
using System.Security.Cryptography;
using Billing.Usage;
using ControlPlane.Errors;
using ControlPlane.Operations;
using ControlPlane.Persistence;
using Microsoft.Extensions.Options;
using Provisioner.Deployments;
using Provisioner.Messaging;

namespace ControlPlane.Instances;

/// <summary>
/// The truth about one hosted instance. It owns the desired spec, runs one operation at a time, turns
/// worker events into lifecycle changes, and reconciles the deployment on a timer while it is active
/// (a reminder brings it back after a restart).
/// </summary>
public sealed partial class InstanceGrain(
    [PersistentState("instance", StorageNames.ControlPlane)] IPersistentState<InstanceState> state,
    IProvisioningCommandBus commands,
    IOptions<ReconcileOptions> reconcileOptions,
    TimeProvider clock,
    ILogger<InstanceGrain> logger) : Grain, IInstanceGrain, IRemindable
{
    private const string ReminderName = "reconcile";
    private const int MaxEvents = 200;
    private const int MaxRetiredExecutions = 16;
    private static readonly TimeSpan BillingNoticeRefresh = TimeSpan.FromMinutes(1);

    private readonly ReconcileOptions _reconcile = reconcileOptions.Value;
    private IGrainTimer? _reconcileTimer;
    private DateTimeOffset? _reconcileSentAt;
    private DateTimeOffset _nextRepairAttempt;
    private int _consecutiveRepairFailures;
    private DateTimeOffset? _lastResentAt;

    // What billing was last told, and when; null until it has been told since this activation, so every activation repeats it.
    private InstanceLifecycleNotice? _billingNotified;
    private DateTimeOffset _billingNotifiedAt;

    // Commands wait here until the state that explains them is durable, so the worker never sees a
    // generation the grain could forget in a crash.
    private readonly List<ProvisioningCommand> _outbox = [];

    private InstanceState S => state.State;

    private DateTimeOffset Now => clock.GetUtcNow();

    private OperationRecord? Active => S.ActiveOperationId is { } id ? FindOperation(id) : null;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (!state.RecordExists || S.Lifecycle == InstanceLifecycle.Deleted)
        {
            return;
        }

        StartReconcileTimer();
        await NotifyBillingAsync();
        if (Active is { } operation)
        {
            // Commands in flight when the control plane stopped may be gone; resuming is safe because applying a spec is idempotent.
            await ResumeAsync(operation);
        }
    }

    public async Task<OperationRecord> CreateAsync(CreateInstanceCommand command)
    {
        if (state.RecordExists)
        {
            return FindOperation(command.OperationId)
                ?? throw new ControlPlaneException(ProblemKind.Conflict, "instance-exists", "Instance already exists", $"Instance '{S.Id}' already exists.");
        }

        var now = Now;
        var operation = NewOperation(command.OperationId, OperationType.Create, command.RequestedBy, new Dictionary<string, string>
        {
            ["name"] = command.Name,
            ["product"] = command.Product,
            ["version"] = command.Version,
            ["size"] = command.Size,
        }) with { TenantId = command.TenantId };
        state.State = new InstanceState
        {
            Id = this.GetPrimaryKeyString(),
            TenantId = command.TenantId,
            Name = command.Name,
            Product = command.Product,
            Backend = command.Backend,
            Version = command.Version,
            Size = command.Size,
            Password = NewPassword(),
            Lifecycle = InstanceLifecycle.Provisioning,
            Health = InstanceHealth.Unknown,
            Desired = new DesiredDeployment(command.Version, command.Size, DeploymentGoal.Running),
            Generation = 1,
            CreatedAt = now,
            UpdatedAt = now,
            ActiveOperationId = operation.Id,
            ActivePhase = ApplyPurpose.Operation,
            LastOperationId = operation.Id,
            Operations = [operation],
        };
        RecordEvent("operation-started", $"Create requested by {command.RequestedBy}.", operation.Id);
        EnqueueApply(ApplyPurpose.Operation, operation.Id);
        await this.RegisterOrUpdateReminder(ReminderName, _reconcile.ReminderPeriod, _reconcile.ReminderPeriod);
        await SaveAndSendAsync();
        StartReconcileTimer();
        LogOperationStarted(operation.Id, OperationType.Create, S.Id);
        return operation;
    }

    public Task<OperationRecord> ChangeSpecAsync(ChangeSpecCommand command)
    {
        EnsureExists();
        EnsureNoActiveOperation();
        if (S.Lifecycle is not (InstanceLifecycle.Running or InstanceLifecycle.Stopped))
        {
            throw Problems.InvalidState(S.Id, S.Lifecycle.ToString(), "scale or upgrade", HintFor(S.Lifecycle));
        }

        if (command.Version == S.Version && command.Size == S.Size)
        {
            throw Problems.NoChange(S.Id, $"already runs version {S.Version} at size {S.Size}.");
        }

        var type = command.Version != S.Version ? OperationType.Upgrade : OperationType.Scale;
        var parameters = new Dictionary<string, string>();
        if (command.Version != S.Version)
        {
            parameters["version"] = command.Version;
        }

        if (command.Size != S.Size)
        {
            parameters["size"] = command.Size;
        }

        var operation = NewOperation(command.OperationId, type, command.RequestedBy, parameters);
        var lifecycle = S.Lifecycle == InstanceLifecycle.Running ? InstanceLifecycle.Updating : InstanceLifecycle.Stopped;
        return BeginAsync(operation, S.Desired with { Version = command.Version, Size = command.Size }, lifecycle);
    }

    public Task<OperationRecord> StopAsync(OperationRequest request)
    {
        EnsureExists();
        EnsureNoActiveOperation();
        if (S.Lifecycle != InstanceLifecycle.Running)
        {
            throw Problems.InvalidState(S.Id, S.Lifecycle.ToString(), "stop", HintFor(S.Lifecycle));
        }

        var operation = NewOperation(request.OperationId, OperationType.Stop, request.RequestedBy);
        return BeginAsync(operation, S.Desired with { Goal = DeploymentGoal.Stopped }, InstanceLifecycle.Stopping);
    }

    public Task<OperationRecord> StartAsync(OperationRequest request)
    {
        EnsureExists();
        EnsureNoActiveOperation();
        if (S.Lifecycle is not (InstanceLifecycle.Stopped or InstanceLifecycle.Failed))
        {
            throw Problems.InvalidState(S.Id, S.Lifecycle.ToString(), "start", HintFor(S.Lifecycle));
        }

        var operation = NewOperation(request.OperationId, OperationType.Start, request.RequestedBy);
        return BeginAsync(operation, S.Desired with { Goal = DeploymentGoal.Running }, InstanceLifecycle.Starting);
    }

    public Task<OperationRecord> DeleteAsync(OperationRequest request)
    {
        EnsureExists();
        EnsureNoActiveOperation();
        if (S.Lifecycle == InstanceLifecycle.Deleted)
        {
            throw Problems.InvalidState(S.Id, S.Lifecycle.ToString(), "delete", "It is already deleted.");
        }

        // Deleting removes the customer's data; nothing can bring it back, so it is never cancellable.
        var operation = NewOperation(request.OperationId, OperationType.Delete, request.RequestedBy) with { Cancellable = false };
        return BeginAsync(operation, S.Desired with { Goal = DeploymentGoal.Absent }, InstanceLifecycle.Deleting);
    }

    public async Task<OperationRecord> CancelOperationAsync(OperationRequest request)
    {
        EnsureExists();
        var operation = FindOperation(request.OperationId) ?? throw Problems.NotFound("operation", request.OperationId);
        if (operation.Status == OperationStatus.Cancelling)
        {
            return operation;
        }

        if (!operation.IsActive)
        {
            throw Problems.NotCancellable(operation.Id, $"it has already finished ({operation.Status.ToString().ToLowerInvariant()}).");
        }

        if (!operation.Cancellable || S.ActivePhase == ApplyPurpose.Rollback)
        {
            throw Problems.NotCancellable(
                operation.Id,
                operation.Type == OperationType.Delete
                    ? "a delete removes the instance's data and cannot be undone."
                    : "it is already rolling back or past a point of no return.");
        }

        operation = Replace(operation with { Status = OperationStatus.Cancelling }, $"Cancellation requested by {request.RequestedBy}.");
        _outbox.Add(new CancelOperationCommand { InstanceId = S.Id, OperationId = operation.Id, IssuedAt = Now });
        await SaveAndSendAsync();
        return operation;
    }

    public Task<InstanceView?> GetAsync() => Task.FromResult(state.RecordExists ? ToView() : null);

    public Task<OperationRecord?> GetOperationAsync(string operationId) => Task.FromResult(FindOperation(operationId));

    public Task<IReadOnlyList<OperationRecord>> GetOperationsAsync() =>
        Task.FromResult<IReadOnlyList<OperationRecord>>([.. S.Operations.AsEnumerable().Reverse()]);

    public Task<IReadOnlyList<InstanceEvent>> GetEventsAsync() =>
        Task.FromResult<IReadOnlyList<InstanceEvent>>([.. S.Events.AsEnumerable().Reverse()]);

    public Task<InstanceCredentials> GetCredentialsAsync()
    {
        EnsureExists();
        if (S.Lifecycle == InstanceLifecycle.Deleted)
        {
            throw Problems.InvalidState(S.Id, S.Lifecycle.ToString(), "read the credentials of", "A deleted instance has none.");
        }

        if (S.Endpoint is null)
        {
            throw Problems.InvalidState(S.Id, S.Lifecycle.ToString(), "read the credentials of", "It has no endpoint yet; try again when it is Running.");
        }

        return Task.FromResult(new InstanceCredentials { Username = "default", Password = S.Password, Host = S.Endpoint.Host, Port = S.Endpoint.Port });
    }

    public Task WakeAsync() => Task.CompletedTask;

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (!state.RecordExists || S.Lifecycle == InstanceLifecycle.Deleted)
        {
            // A deleted instance keeps its reminder until billing has heard of the deletion: it would bill it forever otherwise.
            await NotifyBillingAsync();
            if (state.RecordExists && _billingNotified?.State != MeteredState.Deleted)
            {
                return;
            }

            var reminder = await this.GetReminder(reminderName);
            if (reminder is not null)
            {
                await this.UnregisterReminder(reminder);
            }

            return;
        }

        StartReconcileTimer();
    }

    public async Task ApplyEventAsync(ProvisioningEvent provisioningEvent)
    {
        if (!state.RecordExists)
        {
            return;
        }

        var active = Active;
        var forActiveOperation = active is not null
            && provisioningEvent.OperationId == active.Id
            && provisioningEvent.Generation == S.Generation
            && provisioningEvent.Purpose == S.ActivePhase;
        if (forActiveOperation)
        {
            await ApplyOperationEventAsync(active!, provisioningEvent);
            return;
        }

        // An observation older than one already applied (events overtake each other on a bus) would show a past health.
        var currentObservation = provisioningEvent.Purpose == ApplyPurpose.Reconcile
            && provisioningEvent.OperationId is null
            && provisioningEvent.Generation == S.Generation
            && active is null
            && !(provisioningEvent.OccurredAt < S.ObservedAt);
        if (!currentObservation)
        {
            // A late or duplicated event about work the instance has moved past: it must not move the instance backwards.
            LogStaleEvent(S.Id, provisioningEvent.GetType().Name, provisioningEvent.Generation, S.Generation);
            return;
        }

        switch (provisioningEvent)
        {
            case DeploymentApplied applied:
                await ApplyObservationAsync(applied);
                break;
            case DeploymentFailed failed:
                await ApplyRepairFailureAsync(failed);
                break;
        }
    }

    public async Task RecordDeadLetterAsync(DeadLetteredCommand deadLetter)
    {
        if (!state.RecordExists)
        {
            return;
        }

        var what = $"A {deadLetter.Kind ?? "provisioning"} command"
            + (deadLetter.Generation is { } generation ? $" for generation {generation}" : "")
            + $" was moved to the dead-letter topic '{deadLetter.Topic}': {deadLetter.Reason}";
        LogDeadLettered(S.Id, what);
        var operation = deadLetter.OperationId is { } operationId ? FindOperation(operationId) : null;
        var current = operation is not null
            && operation.Id == S.ActiveOperationId
            && deadLetter.Kind != "cancel"
            && (deadLetter.Generation is null || deadLetter.Generation == S.Generation)
            && (deadLetter.Purpose is null || deadLetter.Purpose == S.ActivePhase);
        if (operation is null)
        {
            RecordEvent("command-dead-lettered", what, null);
        }
        else if (!current)
        {
            Replace(operation, operation.IsActive && deadLetter.Kind == "cancel"
                ? $"{what} The cancellation did not reach the provisioner; the operation goes on."
                : $"{what} It changes nothing: the operation has moved past that command.");
        }
        else
        {
            // Nothing will carry the command out: say so on the operation and end it as a failure, rolling back where that applies.
            operation = Replace(operation!, what);
            RecordEvent("command-dead-lettered", what, operation.Id);
            await FailPhaseAsync(operation, new OperationError
            {
                Code = "command-dead-lettered",
                Message = $"The provisioner could not carry out this operation's command: {deadLetter.Reason} Fix that, then retry the operation.",
            });
        }

        S.UpdatedAt = Now;
        await SaveAndSendAsync();
    }

    private async Task ApplyOperationEventAsync(OperationRecord operation, ProvisioningEvent provisioningEvent)
    {
        var restarted = false;
        if (provisioningEvent.ExecutionId is { } execution)
        {
            if (execution != S.PhaseExecutionId)
            {
                // A run that was given up for a newer one may still speak; only its outcome counts (it converged to the same spec).
                if (S.RetiredExecutionIds.Contains(execution) && !provisioningEvent.IsOutcome)
                {
                    LogStaleEvent(S.Id, provisioningEvent.GetType().Name, provisioningEvent.Generation, S.Generation);
                    return;
                }

                if (S.PhaseExecutionId is { } previous && !provisioningEvent.IsOutcome)
                {
                    // The same command runs again: delivered again after the provisioner was interrupted, or as a duplicate.
                    S.RetiredExecutionIds.Add(previous);
                    if (S.RetiredExecutionIds.Count > MaxRetiredExecutions)
                    {
                        S.RetiredExecutionIds.RemoveAt(0);
                    }

                    operation = MarkRunningStep(operation, StepStatus.Interrupted);
                    S.PhaseStepOffset = operation.Steps.Length;
                    operation = Replace(operation, "The provisioner started the command again (it was delivered again, after an interruption or as a duplicate); its steps follow.");
                    restarted = true;
                }

                S.PhaseExecutionId = execution;
                S.PhaseSequence = 0;
            }

            if (provisioningEvent.Sequence <= S.PhaseSequence)
            {
                // Delivered twice, or overtaken by a later event of the same run: what it says is already known or outdated.
                LogStaleEvent(S.Id, provisioningEvent.GetType().Name, provisioningEvent.Generation, S.Generation);
                return;
            }

            S.PhaseSequence = provisioningEvent.Sequence;
        }

        switch (provisioningEvent)
        {
            case DeploymentStepStarted started when S.PhaseStepOffset + started.StepNumber <= operation.Steps.Length:
            case DeploymentStepCompleted completed when operation.Steps.ElementAtOrDefault(S.PhaseStepOffset + completed.StepNumber - 1) is { Status: not StepStatus.Running }:
                // Delivered twice: the step is already recorded.
                if (!restarted)
                {
                    return;
                }

                break;

            case DeploymentStepStarted started:
                var number = S.PhaseStepOffset + started.StepNumber;
                operation = AddStep(operation, started.StepNumber, started.StepCount, started.StepName, started.OccurredAt);
                Replace(operation, $"Step {number}/{operation.TotalSteps} started: {operation.Steps[^1].Name}.");
                break;

            case DeploymentStepCompleted completed:
                var index = S.PhaseStepOffset + completed.StepNumber - 1;
                if (index >= operation.Steps.Length)
                {
                    // Its start is still on the way (events overtake each other on a bus): record the step, done now.
                    operation = AddStep(operation, completed.StepNumber, completed.StepCount, completed.StepName, completed.StartedAt);
                }

                operation = operation with
                {
                    Steps = operation.Steps.SetItem(index, operation.Steps[index] with { Status = StepStatus.Succeeded, CompletedAt = completed.OccurredAt }),
                };
                Replace(operation, $"Step {index + 1}/{operation.TotalSteps} done.");
                break;

            case DeploymentApplied applied:
                Observe(applied.Observed, applied.OccurredAt);
                // The phase converged: a step whose completion is still on its way (or was overtaken) is done too.
                operation = StepsBefore(operation, operation.Steps.Length);
                await FinishPhaseAsync(operation);
                break;

            case DeploymentFailed failed:
                Observe(failed.Observed, failed.OccurredAt);
                await FailPhaseAsync(operation, new OperationError { Code = failed.ErrorCode, Message = failed.ErrorMessage });
                break;

            case DeploymentCancelled cancelled:
                Observe(cancelled.Observed, cancelled.OccurredAt);
                operation = MarkRunningStep(operation, StepStatus.Cancelled);
                Replace(operation, "Stopped at a safe point.");
                await BeginRollbackAsync(operation, cause: null);
                break;
        }

        S.UpdatedAt = Now;
        await SaveAndSendAsync();
    }

    /// <summary>The worker reached the spec of the current phase: the operation succeeded, or its rollback finished.</summary>
    private async Task FinishPhaseAsync(OperationRecord operation)
    {
        if (S.ActivePhase == ApplyPurpose.Operation)
        {
            if (operation.Status == OperationStatus.Cancelling)
            {
                operation = Replace(operation, "The operation completed before the cancellation could take effect.");
            }

            S.Version = S.Desired.Version;
            S.Size = S.Desired.Size;
            S.FailureReason = null;
            await CompleteAsync(operation, OperationStatus.Succeeded, LifecycleFor(S.Desired.Goal), null);
            return;
        }

        if (S.RollbackCause is { } cause)
        {
            var error = cause with { Message = $"{cause.Message} The instance was rolled back to {Describe(S.Desired)}." };
            await CompleteAsync(operation, OperationStatus.Failed, LifecycleFor(S.Desired.Goal), error);
        }
        else
        {
            await CompleteAsync(operation, OperationStatus.Cancelled, LifecycleFor(S.Desired.Goal), null);
        }
    }

    /// <summary>A step failed for good. Depending on the operation, roll back or stop in a truthful state.</summary>
    private async Task FailPhaseAsync(OperationRecord operation, OperationError error)
    {
        operation = MarkRunningStep(operation, StepStatus.Failed);
        if (S.ActivePhase == ApplyPurpose.Rollback)
        {
            var combined = new OperationError
            {
                Code = S.RollbackCause?.Code ?? error.Code,
                Message = $"{S.RollbackCause?.Message ?? "The operation was cancelled."} Rolling back also failed: {error.Message}",
            };
            S.FailureReason = combined.Message;
            await CompleteAsync(operation, OperationStatus.Failed, InstanceLifecycle.Failed, combined);
            return;
        }

        switch (operation.Type)
        {
            case OperationType.Scale or OperationType.Upgrade:
                Replace(operation, $"Failed: {error.Message}");
                await BeginRollbackAsync(operation, error);
                return;

            case OperationType.Stop:
                // Whatever the worker saw is the truth: still serving, or stopped after all.
                var stillRunning = S.Health == InstanceHealth.Healthy;
                S.Desired = S.Desired with { Goal = stillRunning ? DeploymentGoal.Running : DeploymentGoal.Stopped };
                S.Generation++;
                await CompleteAsync(operation, OperationStatus.Failed, stillRunning ? InstanceLifecycle.Running : InstanceLifecycle.Stopped, error);
                return;

            case OperationType.Delete:
                S.FailureReason = $"Delete failed: {error.Message} Retry the delete.";
                await CompleteAsync(operation, OperationStatus.Failed, InstanceLifecycle.Failed, error);
                return;

            default:
                // Create or start: the instance does not serve. Clean up whatever half-started, keep its data for a retried start.
                S.FailureReason = error.Message;
                S.Desired = S.Desired with { Goal = operation.Type == OperationType.Create ? DeploymentGoal.Absent : DeploymentGoal.Stopped };
                S.Generation++;
                await CompleteAsync(operation, OperationStatus.Failed, InstanceLifecycle.Failed, error);
                EnqueueApply(ApplyPurpose.Rollback, operation.Id);
                return;
        }
    }

    private async Task BeginRollbackAsync(OperationRecord operation, OperationError? cause)
    {
        S.Desired = operation.Type == OperationType.Create
            ? S.Desired with { Goal = DeploymentGoal.Absent }
            : S.RollbackTo ?? S.Desired;
        S.Generation++;
        S.ActivePhase = ApplyPurpose.Rollback;
        S.RollbackCause = cause;
        S.PhaseStepOffset = operation.Steps.Length;
        ResetPhaseRuns();
        Replace(operation with { Cancellable = false }, $"Rolling back to {Describe(S.Desired)}.");
        EnqueueApply(ApplyPurpose.Rollback, operation.Id);
    }

    private async Task CompleteAsync(OperationRecord operation, OperationStatus status, InstanceLifecycle lifecycle, OperationError? error)
    {
        var now = Now;
        operation = Replace(operation.Completed(status, now, error), $"Operation {status.ToString().ToLowerInvariant()}.");
        S.Lifecycle = lifecycle;
        S.ActiveOperationId = null;
        S.RollbackTo = null;
        S.RollbackCause = null;
        S.ActivePhase = ApplyPurpose.Operation;
        S.PhaseStepOffset = 0;
        ResetPhaseRuns();
        _reconcileSentAt = null;
        var summary = error is null
            ? $"{operation.Type} {status.ToString().ToLowerInvariant()}."
            : $"{operation.Type} {status.ToString().ToLowerInvariant()}: {error.Message}";
        RecordEvent($"operation-{status.ToString().ToLowerInvariant()}", summary, operation.Id);
        LogOperationCompleted(operation.Id, operation.Type, S.Id, status, lifecycle);

        if (lifecycle == InstanceLifecycle.Deleted)
        {
            S.DeletedAt = now;
            S.Endpoint = null;
            S.Health = InstanceHealth.Unknown;
            S.HealthDetail = null;
            S.Password = "";
            _reconcileTimer?.Dispose();
            _reconcileTimer = null;
            var reminder = await this.GetReminder(ReminderName);
            if (reminder is not null)
            {
                await this.UnregisterReminder(reminder);
            }
        }
    }

    private async Task ApplyObservationAsync(DeploymentApplied applied)
    {
        _reconcileSentAt = null;
        _consecutiveRepairFailures = 0;
        var healthBefore = S.Health;
        Observe(applied.Observed, applied.OccurredAt);
        if (applied.Repairs.Count > 0)
        {
            var message = $"{applied.Drift ?? "The deployment drifted from its spec."} Repaired: {string.Join("; ", applied.Repairs)}.";
            RecordEvent("repaired", message, null);
            LogRepaired(S.Id, message);
        }
        else if (healthBefore != S.Health)
        {
            RecordEvent("health-changed", $"Health is {S.Health.ToString().ToLowerInvariant()}: {S.HealthDetail}", null);
        }
        else
        {
            // Nothing a person would notice changed; the fresh detail is served from memory without a write.
            return;
        }

        S.UpdatedAt = Now;
        await SaveAndSendAsync();
    }

    private async Task ApplyRepairFailureAsync(DeploymentFailed failed)
    {
        _reconcileSentAt = null;
        _consecutiveRepairFailures++;
        var backoff = TimeSpan.FromTicks(Math.Min(
            _reconcile.MaxRepairBackoff.Ticks,
            _reconcile.Interval.Ticks * (1L << Math.Min(_consecutiveRepairFailures, 16))));
        _nextRepairAttempt = Now + backoff;
        Observe(failed.Observed, failed.OccurredAt);
        S.Health = InstanceHealth.Unhealthy;
        S.HealthDetail = failed.ErrorMessage;
        RecordEvent("repair-failed", $"{failed.ErrorMessage} Next attempt in {backoff.TotalSeconds:0} s.", null);
        LogRepairFailed(S.Id, failed.ErrorCode, failed.ErrorMessage);
        S.UpdatedAt = Now;
        await SaveAndSendAsync();
    }

    private void Observe(ObservedDeployment observed, DateTimeOffset observedAt)
    {
        S.ObservedAt = observedAt;
        if (observed.Endpoint is not null)
        {
            S.Endpoint = observed.Endpoint;
        }

        (S.Health, S.HealthDetail) = observed.Status switch
        {
            DeploymentStatus.Running when observed.Health == DeploymentHealth.Healthy && observed.ProbeLatency > _reconcile.DegradedLatency =>
                (InstanceHealth.Degraded, $"{observed.Detail} That is slower than {_reconcile.DegradedLatency.TotalMilliseconds:0} ms."),
            DeploymentStatus.Running when observed.Health == DeploymentHealth.Healthy => (InstanceHealth.Healthy, observed.Detail),
            DeploymentStatus.Running or DeploymentStatus.Starting => (InstanceHealth.Unhealthy, observed.Detail),
            _ when S.Desired.Goal == DeploymentGoal.Running => (InstanceHealth.Unhealthy, observed.Detail ?? "The instance's process is not running."),
            _ => (InstanceHealth.Unknown, observed.Detail),
        };
    }

    private void StartReconcileTimer()
    {
        if (_reconcileTimer is not null)
        {
            return;
        }

        // A random first tick spreads the checks of many instances that wake up together after a restart.
        var firstTick = TimeSpan.FromMilliseconds(Random.Shared.Next(50, Math.Max(51, (int)_reconcile.Interval.TotalMilliseconds)));
        _reconcileTimer = this.RegisterGrainTimer(
            ReconcileAsync,
            new GrainTimerCreationOptions { DueTime = firstTick, Period = _reconcile.Interval, Interleave = false, KeepAlive = true });
    }

    private async Task ReconcileAsync(CancellationToken cancellationToken)
    {
        if (!state.RecordExists || S.Lifecycle == InstanceLifecycle.Deleted)
        {
            _reconcileTimer?.Dispose();
            _reconcileTimer = null;
            return;
        }

        if (_outbox.Count > 0)
        {
            await SendOutboxAsync();
        }

        // A notice that failed earlier is repeated here; an unchanged one costs nothing.
        await NotifyBillingAsync();
        var now = Now;
        if (Active is { } operation)
        {
            var quietSince = _lastResentAt is { } resent && resent > operation.UpdatedAt ? resent : operation.UpdatedAt;
            if (now - quietSince >= _reconcile.StallTimeout)
            {
                _lastResentAt = now;
                Replace(operation, $"No progress for {_reconcile.StallTimeout.TotalSeconds:0} s; sent the command again.");
                EnqueueApply(S.ActivePhase, operation.Id);
                await SaveAndSendAsync();
            }

            return;
        }

        if (S.Lifecycle is not (InstanceLifecycle.Running or InstanceLifecycle.Stopped))
        {
            return;
        }

        if (_reconcileSentAt is { } sent && now - sent < _reconcile.StallTimeout)
        {
            return;
        }

        if (now < _nextRepairAttempt)
        {
            return;
        }

        _reconcileSentAt = now;
        EnqueueApply(ApplyPurpose.Reconcile, null);
        await SendOutboxAsync();
    }

    private async Task ResumeAsync(OperationRecord operation)
    {
        if (operation.Status == OperationStatus.Cancelling && S.ActivePhase == ApplyPurpose.Operation)
        {
            // The cancellation was accepted before the restart; honour it rather than redoing the work.
            Replace(operation, "Resumed after a control-plane restart.");
            await BeginRollbackAsync(operation, cause: null);
            await SaveAndSendAsync();
            return;
        }

        EnqueueApply(S.ActivePhase, operation.Id);
        await SendOutboxAsync();
    }

    private async Task<OperationRecord> BeginAsync(OperationRecord operation, DesiredDeployment desired, InstanceLifecycle lifecycle)
    {
        S.RollbackTo = S.Desired;
        S.Desired = desired;
        S.Generation++;
        S.Lifecycle = lifecycle;
        S.ActiveOperationId = operation.Id;
        S.ActivePhase = ApplyPurpose.Operation;
        S.RollbackCause = null;
        S.PhaseStepOffset = 0;
        ResetPhaseRuns();
        S.LastOperationId = operation.Id;
        S.Operations.Add(operation);
        S.UpdatedAt = Now;
        RecordEvent("operation-started", $"{operation.Type} requested by {operation.RequestedBy}.", operation.Id);
        _reconcileSentAt = null;
        EnqueueApply(ApplyPurpose.Operation, operation.Id);
        await SaveAndSendAsync();
        LogOperationStarted(operation.Id, operation.Type, S.Id);
        return operation;
    }

    private async Task SaveAndSendAsync()
    {
        await state.WriteStateAsync();
        await NotifyBillingAsync();
        await SendOutboxAsync();
    }

    /// <summary>
    /// Tells billing the lifecycle and size just stored when they change, and again every minute: the metering grain
    /// keeps the probe's credentials only in memory, so one activated anew (moved to another silo) learns them again.
    /// A failure is retried on the next reconcile tick.
    /// </summary>
    private async Task NotifyBillingAsync()
    {
        if (!state.RecordExists)
        {
            return;
        }

        var notice = new InstanceLifecycleNotice
        {
            TenantId = S.TenantId,
            State = MeteredStateOf(S.Lifecycle),
            Size = S.Size,
            Probe = S.Endpoint is { } endpoint && S.Lifecycle != InstanceLifecycle.Deleted
                ? new ProbeTarget { Host = endpoint.Host, Port = endpoint.Port, Password = Secret.Of(S.Password) }
                : null,
        };
        if (notice == _billingNotified && Now - _billingNotifiedAt < BillingNoticeRefresh)
        {
            return;
        }

        try
        {
            await GrainFactory.GetGrain<IInstanceMeteringGrain>(S.Id).ObserveLifecycleAsync(notice);
            _billingNotified = notice;
            _billingNotifiedAt = Now;
        }
        catch (Exception exception)
        {
            // Billing must never hold up the instance: the change stays recorded here and billing is told on the next
            // tick; a deleted instance has no ticks left, so its reminder comes back to retry.
            LogBillingNoticeFailed(exception, S.Id);
            if (S.Lifecycle == InstanceLifecycle.Deleted)
            {
                await RetryBillingNoticeLaterAsync();
            }
        }
    }

    private async Task RetryBillingNoticeLaterAsync()
    {
        try
        {
            await this.RegisterOrUpdateReminder(ReminderName, _reconcile.ReminderPeriod, _reconcile.ReminderPeriod);
        }
        catch (Exception exception)
        {
            LogBillingNoticeFailed(exception, S.Id);
        }
    }

    /// <summary>Stopping, Stopped and Starting are all the customer's stop; Deleting is already the customer's deletion.</summary>
    private static MeteredState MeteredStateOf(InstanceLifecycle lifecycle) => lifecycle switch
    {
        InstanceLifecycle.Provisioning => MeteredState.Provisioning,
        InstanceLifecycle.Running => MeteredState.Running,
        InstanceLifecycle.Updating => MeteredState.Updating,
        InstanceLifecycle.Stopping or InstanceLifecycle.Stopped or InstanceLifecycle.Starting => MeteredState.Stopped,
        InstanceLifecycle.Failed => MeteredState.Failed,
        _ => MeteredState.Deleted,
    };

    private async Task SendOutboxAsync()
    {
        // Sent after the write: a crash in between loses only a command that the stall check or the next activation sends again.
        while (_outbox.Count > 0)
        {
            try
            {
                await commands.SendAsync(_outbox[0]);
            }
            catch (Exception exception)
            {
                // The bus is unreachable (a sidecar restarting): the state is saved, so keep the commands and let the
                // reconcile timer send them; the caller's request has succeeded either way.
                LogSendFailed(exception, S.Id, _outbox.Count);
                return;
            }

            _outbox.RemoveAt(0);
        }
    }

    private void EnqueueApply(ApplyPurpose purpose, string? operationId) =>
        _outbox.Add(new ApplyDeploymentCommand
        {
            InstanceId = S.Id,
            OperationId = operationId,
            IssuedAt = Now,
            Purpose = purpose,
            Spec = new DeploymentSpec
            {
                InstanceId = S.Id,
                TenantId = S.TenantId,
                Backend = S.Backend,
                Product = S.Product,
                Version = S.Desired.Version,
                Size = S.Desired.Size,
                Goal = S.Desired.Goal,
                Password = Secret.Of(S.Password),
                Generation = S.Generation,
            },
        });

    private OperationRecord NewOperation(string id, OperationType type, string requestedBy, IDictionary<string, string>? parameters = null)
    {
        var now = Now;
        return new OperationRecord
        {
            Id = id,
            TenantId = S.TenantId,
            InstanceId = this.GetPrimaryKeyString(),
            Type = type,
            Status = OperationStatus.Pending,
            RequestedBy = requestedBy,
            CreatedAt = now,
            UpdatedAt = now,
            Parameters = parameters?.ToImmutableSortedDictionary(StringComparer.Ordinal) ?? ImmutableSortedDictionary<string, string>.Empty,
            Log = [new OperationLogEntry { At = now, Message = $"{type} requested by {requestedBy}." }],
        };
    }

    private OperationRecord? FindOperation(string operationId) => S.Operations.Find(o => o.Id == operationId);

    /// <summary>Stores a new version of an operation, with a line in its log.</summary>
    private OperationRecord Replace(OperationRecord operation, string logMessage)
    {
        operation = operation.WithLog(Now, logMessage);
        var index = S.Operations.FindIndex(o => o.Id == operation.Id);
        S.Operations[index] = operation;
        return operation;
    }

    private OperationRecord MarkRunningStep(OperationRecord operation, StepStatus status)
    {
        var index = operation.Steps.Length - 1;
        return index >= 0 && operation.Steps[index].Status == StepStatus.Running
            ? operation with { Steps = operation.Steps.SetItem(index, operation.Steps[index] with { Status = status, CompletedAt = Now }) }
            : operation;
    }

    /// <summary>
    /// Records step <paramref name="stepNumber"/> of the current phase as running. Every earlier step of the phase
    /// has finished by then (a later one started), and one whose events never came is listed under its number.
    /// </summary>
    private OperationRecord AddStep(OperationRecord operation, int stepNumber, int stepCount, string stepName, DateTimeOffset? startedAt)
    {
        operation = StepsBefore(operation, S.PhaseStepOffset + stepNumber - 1);
        return operation with
        {
            Status = operation.Status == OperationStatus.Pending ? OperationStatus.Running : operation.Status,
            TotalSteps = S.PhaseStepOffset + stepCount,
            Steps = operation.Steps.Add(new OperationStep { Name = PhaseStepName(stepName), Status = StepStatus.Running, StartedAt = startedAt }),
        };
    }

    /// <summary>
    /// Before step <paramref name="count"/>+1 is recorded: every earlier step of the phase has finished (a later one
    /// started), and one whose events never came is listed under its number rather than left out.
    /// </summary>
    private OperationRecord StepsBefore(OperationRecord operation, int count)
    {
        var steps = operation.Steps.ToBuilder();
        for (var index = S.PhaseStepOffset; index < steps.Count; index++)
        {
            if (steps[index].Status == StepStatus.Running)
            {
                steps[index] = steps[index] with { Status = StepStatus.Succeeded, CompletedAt = Now };
            }
        }

        while (steps.Count < count)
        {
            steps.Add(new OperationStep { Name = PhaseStepName($"Step {steps.Count - S.PhaseStepOffset + 1}"), Status = StepStatus.Succeeded });
        }

        return operation with { Steps = steps.ToImmutable() };
    }

    private string PhaseStepName(string stepName) => S.ActivePhase == ApplyPurpose.Rollback ? $"Roll back: {stepName}" : stepName;

    /// <summary>A new phase (operation, rollback, none) starts with no run of its command seen yet.</summary>
    private void ResetPhaseRuns()
    {
        S.PhaseExecutionId = null;
        S.PhaseSequence = 0;
        S.RetiredExecutionIds.Clear();
    }

    private void RecordEvent(string kind, string message, string? operationId)
    {
        S.Events.Add(new InstanceEvent { At = Now, Kind = kind, Message = message, OperationId = operationId });
        if (S.Events.Count > MaxEvents)
        {
            S.Events.RemoveRange(0, S.Events.Count - MaxEvents);
        }
    }

    private InstanceView ToView() => new()
    {
        Id = S.Id,
        TenantId = S.TenantId,
        Name = S.Name,
        Product = S.Product,
        Version = S.Version,
        Size = S.Size,
        Backend = S.Backend,
        State = S.Lifecycle,
        Health = S.Health,
        HealthDetail = S.HealthDetail,
        FailureReason = S.FailureReason,
        Endpoint = S.Endpoint,
        CreatedAt = S.CreatedAt,
        UpdatedAt = S.UpdatedAt,
        LastOperationId = S.LastOperationId,
        ActiveOperationId = S.ActiveOperationId,
        DeletedAt = S.DeletedAt,
    };

    private void EnsureExists()
    {
        if (!state.RecordExists)
        {
            throw Problems.NotFound("instance", this.GetPrimaryKeyString());
        }
    }

    private void EnsureNoActiveOperation()
    {
        if (Active is { } active)
        {
            throw Problems.OperationInProgress(S.Id, active.Id, active.Type.ToString().ToLowerInvariant());
        }
    }

    private static InstanceLifecycle LifecycleFor(DeploymentGoal goal) => goal switch
    {
        DeploymentGoal.Running => InstanceLifecycle.Running,
        DeploymentGoal.Stopped => InstanceLifecycle.Stopped,
        _ => InstanceLifecycle.Deleted,
    };

    private static string HintFor(InstanceLifecycle lifecycle) => lifecycle switch
    {
        InstanceLifecycle.Stopped => "Start it first.",
        InstanceLifecycle.Failed => "Start it again or delete it.",
        InstanceLifecycle.Running => "It is already running.",
        InstanceLifecycle.Deleted => "It was deleted.",
        _ => "Wait for the current change to finish.",
    };

    private static string Describe(DesiredDeployment desired) => desired.Goal switch
    {
        DeploymentGoal.Absent => "nothing deployed",
        DeploymentGoal.Stopped => $"version {desired.Version}, size {desired.Size}, stopped",
        _ => $"version {desired.Version}, size {desired.Size}, running",
    };

    private static string NewPassword() => Base64UrlEncode(RandomNumberGenerator.GetBytes(24));

    private static string Base64UrlEncode(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    [LoggerMessage(Level = LogLevel.Information, Message = "Operation {OperationId} ({OperationType}) started on instance {InstanceId}")]
    private partial void LogOperationStarted(string operationId, OperationType operationType, string instanceId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Operation {OperationId} ({OperationType}) on instance {InstanceId} ended {Status}; instance is {Lifecycle}")]
    private partial void LogOperationCompleted(string operationId, OperationType operationType, string instanceId, OperationStatus status, InstanceLifecycle lifecycle);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Instance {InstanceId} drifted and was repaired: {Repair}")]
    private partial void LogRepaired(string instanceId, string repair);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Instance {InstanceId} could not be repaired ({ErrorCode}): {Error}")]
    private partial void LogRepairFailed(string instanceId, string errorCode, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not send provisioning commands of instance {InstanceId} ({Count} waiting); retrying with the reconcile timer")]
    private partial void LogSendFailed(Exception exception, string instanceId, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Instance {InstanceId}: {Message}")]
    private partial void LogDeadLettered(string instanceId, string message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not tell billing about instance {InstanceId}; retrying on the next reconcile")]
    private partial void LogBillingNoticeFailed(Exception exception, string instanceId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Instance {InstanceId} ignored a stale {EventType} for generation {EventGeneration} (now {Generation})")]
    private partial void LogStaleEvent(string instanceId, string eventType, long eventGeneration, long generation);
}
