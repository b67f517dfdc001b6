using Billing.Usage;
using ControlPlane.Api;
using ControlPlane.Errors;
using ControlPlane.Operations;
using ControlPlane.Persistence;
using ControlPlane.Tenants;
using Microsoft.Extensions.Options;
using Provisioner.Messaging;

namespace ControlPlane.Instances;

/// <summary>
/// The truth about one hosted instance, and the orchestrator of its life. <see cref="InstanceLifecycleTable"/> says what
/// a verb or an outcome does, <see cref="InstanceTransitions"/> carries it out on the state, <see cref="OperationProgress"/>
/// orders the provisioner's events, <see cref="ReconcileSchedule"/> says when to check and when to give up. The grain
/// stores each change before it sends the command that follows from it (a write that fails changes and sends nothing),
/// and tells billing what it stored.
/// </summary>
public sealed partial class InstanceGrain(
    [PersistentState("instance", StorageNames.ControlPlane)] IPersistentState<InstanceState> state,
    IProvisioningCommandBus commands,
    IOptions<ReconcileOptions> reconcileOptions,
    IOptions<RetentionOptions> retentionOptions,
    TimeProvider clock,
    ILogger<InstanceGrain> logger) : Grain, IInstanceGrain, IRemindable
{
    private const string ReminderName = "reconcile";

    private readonly ReconcileOptions _reconcile = reconcileOptions.Value;
    private readonly ReconcileSchedule _schedule = new(reconcileOptions.Value);
    private readonly InstanceTransitions _transitions = new(reconcileOptions.Value, retentionOptions.Value);
    private readonly BillingNotices _billing = new();

    // Commands wait here until the state that explains them is stored; a write that fails takes back what it added.
    private readonly List<ProvisioningCommand> _outbox = [];
    private IGrainTimer? _timer;

    // Step progress stays in memory until the next write (an outcome, an observation): a crash loses only progress
    // notes, which the resumed command reports again. So a create costs two writes, not one per step.
    private bool _unsavedProgress;

    private InstanceState S => state.State;

    private DateTimeOffset Now => clock.GetUtcNow();

    private bool Live => state.RecordExists && S.Lifecycle != InstanceLifecycle.Deleted;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (!Live)
        {
            return;
        }

        StartTimer();
        await NotifyBillingAsync();
        if (S.RunningOperation() is { Status: OperationStatus.Cancelling } cancelling && S.Active!.Phase == ApplyPurpose.Operation)
        {
            // The cancellation was accepted before the restart; honour it rather than redoing the work.
            await EndPhaseAsync(cancelling.WithLog(Now, "Resumed after a control-plane restart."), new PhaseOutcome(PhaseOutcomeKind.Cancelled, null, Now));
        }
        else if (S.Active is { } active)
        {
            // Commands in flight when the control plane stopped may be gone; applying a spec again is safe.
            EnqueueApply(active.Phase, active.OperationId);
            await SendOutboxAsync();
        }
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (_unsavedProgress)
        {
            try
            {
                await state.WriteStateAsync(cancellationToken);
            }
            catch (Exception exception)
            {
                LogWriteFailed(exception, S.Id);
            }
        }
    }

    public async Task<OperationRecord> ExecuteAsync(InstanceCommand command)
    {
        if (state.RecordExists && S.FindOperation(command.OperationId) is { } earlier)
        {
            return earlier;
        }

        if (command.Verb == OperationType.Create && state.RecordExists)
        {
            throw new ControlPlaneException(ProblemKind.Conflict, "instance-exists", "Instance already exists", $"Instance '{S.Id}' already exists.");
        }

        var before = state.RecordExists ? S.Lifecycle : (InstanceLifecycle?)null;
        var current = state.RecordExists ? S : InstanceTransitions.NewInstance(this.GetPrimaryKeyString(), command, Now);
        var change = StateChange.Begin(state);
        var outboxMark = _outbox.Count;
        var operation = _transitions.Begin(current, InstanceLifecycleTable.Verb(command.Verb), command, before, Now);
        state.State = current;
        if (before is null)
        {
            await this.RegisterOrUpdateReminder(ReminderName, _reconcile.ReminderPeriod, _reconcile.ReminderPeriod);
        }

        EnqueueApply(ApplyPurpose.Operation, operation.Id);
        _schedule.Reset();
        await CommitAsync(change, outboxMark);
        StartTimer();
        LogOperationStarted(operation.Id, operation.Type, S.Id);
        return operation;
    }

    public async Task<OperationRecord> CancelOperationAsync(OperationRequest request)
    {
        var operation = (state.RecordExists ? S.FindOperation(request.OperationId) : null) ?? throw Problems.NotFound("operation", request.OperationId);
        if (operation.Status == OperationStatus.Cancelling)
        {
            return operation;
        }

        if (!operation.IsActive)
        {
            throw Problems.NotCancellable(operation.Id, $"it has already finished ({operation.Status.ToString().ToLowerInvariant()}).");
        }

        InstanceLifecycleTable.Decide(S.Lifecycle, LifecycleTrigger.Cancel, S.Context(), S.Id);
        var change = StateChange.Begin(state);
        var outboxMark = _outbox.Count;
        operation = S.Replace(operation.WithLog(Now, $"Cancellation requested by {request.RequestedBy}.") with { Status = OperationStatus.Cancelling });
        _outbox.Add(new CancelOperationCommand { InstanceId = S.Id, OperationId = operation.Id, IssuedAt = Now });
        await CommitAsync(change, outboxMark);
        return operation;
    }

    public Task<InstanceView?> GetAsync() => Task.FromResult(state.RecordExists ? S.ToView() : null);

    public Task<OperationRecord?> GetOperationAsync(string operationId) => Task.FromResult(state.RecordExists ? S.FindOperation(operationId) : null);

    public Task<Page<OperationRecord>> ListOperationsAsync(PageRequest page) =>
        Task.FromResult(Paging.Page(S.Operations.AsEnumerable().Reverse(), o => Paging.Key(o.CreatedAt, o.Id), descending: true, page));

    public Task<Page<InstanceEvent>> ListEventsAsync(PageRequest page) =>
        Task.FromResult(Paging.Page(S.Events.AsEnumerable().Reverse(), e => Paging.Key(e.Sequence), descending: true, page));

    public Task<InstanceCredentials> GetCredentialsAsync()
    {
        var refusal = !state.RecordExists ? Problems.NotFound("instance", this.GetPrimaryKeyString())
            : S.Lifecycle == InstanceLifecycle.Deleted ? Problems.InvalidState(S.Id, S.Lifecycle.ToString(), "read the credentials of", "A deleted instance has none.")
            : S.Endpoint is null ? Problems.InvalidState(S.Id, S.Lifecycle.ToString(), "read the credentials of", "It has no endpoint yet; try again when it is Running.")
            : null;
        return refusal is not null
            ? throw refusal
            : Task.FromResult(new InstanceCredentials { Username = "default", Password = S.Password, Host = S.Endpoint!.Host, Port = S.Endpoint.Port });
    }

    public Task WakeAsync() => Task.CompletedTask;

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (Live)
        {
            StartTimer();
            return;
        }

        // A deleted instance keeps its reminder until billing has heard of the deletion (it would bill it forever
        // otherwise), then until its retention ends, when its state goes: the audit log is the permanent record.
        await NotifyBillingAsync();
        if (state.RecordExists && !_billing.DeletionHeard)
        {
            return;
        }

        var remaining = state.RecordExists ? S.DeletedAt!.Value + retentionOptions.Value.DeletedInstances - Now : TimeSpan.Zero;
        if (remaining > TimeSpan.Zero)
        {
            await this.RegisterOrUpdateReminder(ReminderName, remaining, TimeSpan.FromDays(1));
            return;
        }

        if (state.RecordExists)
        {
            var tenant = GrainFactory.GetGrain<ITenantGrain>(S.TenantId);
            await state.ClearStateAsync();
            await tenant.InstanceDeletedAsync(this.GetPrimaryKeyString(), stateRemoved: true);
            LogPruned(this.GetPrimaryKeyString());
        }

        if (await this.GetReminder(reminderName) is { } reminder)
        {
            await this.UnregisterReminder(reminder);
        }
    }

    public async Task ApplyEventAsync(ProvisioningEvent provisioningEvent)
    {
        if (!state.RecordExists)
        {
            return;
        }

        var forActivePhase = S.Active is { } active
            && provisioningEvent.OperationId == active.OperationId
            && provisioningEvent.Generation == S.Generation
            && provisioningEvent.Purpose == active.Phase;
        if (forActivePhase && S.RunningOperation() is { } operation)
        {
            var update = OperationProgress.Apply(operation, S.Active!, provisioningEvent, Now);
            if (update.Ignored is { } why)
            {
                LogIgnoredEvent(S.Id, provisioningEvent.GetType().Name, why);
            }
            else if (update.Outcome is { } outcome)
            {
                await EndPhaseAsync(update.Operation, outcome);
            }
            else
            {
                S.Replace(update.Operation);
                _unsavedProgress = true;
            }

            return;
        }

        // A check's outcome for the current spec, not older than one already applied (events overtake each other on a bus).
        var currentCheck = provisioningEvent is { IsOutcome: true, Purpose: ApplyPurpose.Reconcile, OperationId: null } and not DeploymentCancelled
            && provisioningEvent.Generation == S.Generation
            && S.Active is null
            && !(provisioningEvent.OccurredAt < S.ObservedAt);
        if (!currentCheck)
        {
            // A late or duplicated event about work the instance has moved past: it must not move the instance backwards.
            LogIgnoredEvent(S.Id, provisioningEvent.GetType().Name, $"it is about generation {provisioningEvent.Generation} (now {S.Generation}) or finished work");
            return;
        }

        var change = StateChange.Begin(state);
        var result = _transitions.Check(S, provisioningEvent, _schedule, Now);
        if (result.Changed)
        {
            LogChecked(S.Id, S.Events[^1].Kind, S.Events[^1].Message);
            await FollowAsync(change, _outbox.Count, result);
        }
    }

    public async Task RecordDeadLetterAsync(DeadLetteredCommand deadLetter)
    {
        if (!state.RecordExists)
        {
            return;
        }

        var what = $"A {deadLetter.Kind ?? "provisioning"} command" + (deadLetter.Generation is { } generation ? $" for generation {generation}" : "")
            + $" was moved to the dead-letter topic '{deadLetter.Topic}': {deadLetter.Reason}";
        LogDeadLettered(S.Id, what);
        var operation = deadLetter.OperationId is { } operationId ? S.FindOperation(operationId) : null;
        if (operation is not null && operation.Id == S.Active?.OperationId && deadLetter.Kind != "cancel"
            && (deadLetter.Generation ?? S.Generation) == S.Generation && (deadLetter.Purpose ?? S.Active.Phase) == S.Active.Phase)
        {
            // Nothing will carry the command out: say so, and end the phase as a failure (rolling back where that applies).
            InstanceHistory.Record(S, Now, "command-dead-lettered", what, operation.Id);
            await EndPhaseAsync(operation.WithLog(Now, what), new PhaseOutcome(PhaseOutcomeKind.Failed, null, Now, new OperationError
            {
                Code = "command-dead-lettered",
                Message = $"The provisioner could not carry out this operation's command: {deadLetter.Reason} Fix that, then retry the operation.",
            }));
            return;
        }

        var change = StateChange.Begin(state);
        if (operation is null)
        {
            InstanceHistory.Record(S, Now, "command-dead-lettered", what);
        }
        else
        {
            S.Replace(operation.WithLog(Now, operation.IsActive && deadLetter.Kind == "cancel"
                ? $"{what} The cancellation did not reach the provisioner; the operation goes on."
                : $"{what} It changes nothing: the operation has moved past that command."));
        }

        S.UpdatedAt = Now;
        await CommitAsync(change, _outbox.Count);
    }

    /// <summary>The current phase of the active operation ended: the table says what follows; store it, then send it.</summary>
    private async Task EndPhaseAsync(OperationRecord operation, PhaseOutcome outcome)
    {
        var change = StateChange.Begin(state);
        var outboxMark = _outbox.Count;
        var result = _transitions.EndPhase(S, operation, outcome, Now);
        await FollowAsync(change, outboxMark, result);
        if (!Live)
        {
            // Deleted: its state goes when its retention ends (ReceiveReminder), once billing has heard of the deletion.
            StopTimer();
            await GrainFactory.GetGrain<ITenantGrain>(S.TenantId).InstanceDeletedAsync(S.Id, stateRemoved: false);
            await this.RegisterOrUpdateReminder(ReminderName, TimeSpan.FromSeconds(Math.Max(1, retentionOptions.Value.DeletedInstances.TotalSeconds)), _reconcile.ReminderPeriod);
        }
    }

    /// <summary>Stores what a transition changed and sends the command it calls for.</summary>
    private async Task FollowAsync(StateChange<InstanceState> change, int outboxMark, ChangeResult result)
    {
        if (result.Apply is { } purpose)
        {
            EnqueueApply(purpose, result.OperationId);
        }

        if (result.OperationEnded)
        {
            _schedule.Reset();
            LogOperationCompleted(S.LastOperationId!, S.Id, S.Lifecycle);
        }

        if (result.Apply == ApplyPurpose.Reconcile)
        {
            _schedule.CheckSent(Now);
        }

        await CommitAsync(change, outboxMark);
    }

    private async Task ReconcileAsync(CancellationToken cancellationToken)
    {
        if (!Live)
        {
            StopTimer();
            return;
        }

        await SendOutboxAsync();
        await NotifyBillingAsync();
        switch (_schedule.OnTick(Now, S))
        {
            case ReconcileAction.ResendOperation:
                var change = StateChange.Begin(state);
                var outboxMark = _outbox.Count;
                var operation = S.RunningOperation()!;
                S.Replace(operation.WithLog(Now, $"No progress for {_reconcile.StallTimeout.TotalSeconds:0} s; sent the command again."));
                EnqueueApply(S.Active!.Phase, operation.Id);
                try
                {
                    await CommitAsync(change, outboxMark);
                }
                catch (StoreUnavailableException)
                {
                    // Logged; the next tick tries again.
                }

                break;
            case ReconcileAction.Check:
                EnqueueApply(ApplyPurpose.Reconcile, null);
                await SendOutboxAsync();
                break;
        }
    }

    /// <summary>Stores the change, then tells billing and sends the commands it explains; a failed write changes and sends nothing.</summary>
    private async Task CommitAsync(StateChange<InstanceState> change, int outboxMark)
    {
        try
        {
            await change.WriteAsync(() => _outbox.RemoveRange(outboxMark, _outbox.Count - outboxMark));
        }
        catch (StoreUnavailableException unavailable)
        {
            LogWriteFailed(unavailable.Cause ?? unavailable, this.GetPrimaryKeyString());
            if (unavailable.StaleActivation)
            {
                DeactivateOnIdle();
            }

            throw;
        }

        _unsavedProgress = false;
        await NotifyBillingAsync();
        await SendOutboxAsync();
    }

    /// <summary>Tells billing the lifecycle and size just stored when they change, and again every minute; a failure is retried on the next tick.</summary>
    private async Task NotifyBillingAsync()
    {
        var notice = state.RecordExists ? BillingNotices.For(S) : null;
        if (notice is null || !_billing.IsDue(notice, Now))
        {
            return;
        }

        try
        {
            await GrainFactory.GetGrain<IInstanceMeteringGrain>(S.Id).ObserveLifecycleAsync(notice);
            _billing.Told(notice, Now);
        }
        catch (Exception exception)
        {
            // Billing must never hold up the instance: the change stays stored here, and a deleted instance's reminder retries.
            LogBillingNoticeFailed(exception, S.Id);
        }
    }

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
                // The bus is unreachable (a sidecar restarting): the state is stored, so keep the commands for the next tick.
                LogSendFailed(exception, S.Id, _outbox.Count);
                return;
            }

            _outbox.RemoveAt(0);
        }
    }

    private void EnqueueApply(ApplyPurpose purpose, string? operationId) =>
        _outbox.Add(new ApplyDeploymentCommand { InstanceId = S.Id, OperationId = operationId, IssuedAt = Now, Purpose = purpose, Spec = S.Spec() });

    private void StartTimer() =>
        // A random first tick spreads the checks of many instances that wake up together after a restart.
        _timer ??= this.RegisterGrainTimer(ReconcileAsync, new GrainTimerCreationOptions
        {
            DueTime = TimeSpan.FromMilliseconds(Random.Shared.Next(50, Math.Max(51, (int)_reconcile.Interval.TotalMilliseconds))),
            Period = _reconcile.Interval,
            Interleave = false,
            KeepAlive = true,
        });

    private void StopTimer()
    {
        _timer?.Dispose();
        _timer = null;
    }
}
