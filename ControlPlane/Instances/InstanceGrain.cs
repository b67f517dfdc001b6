using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Errors;
using ControlPlane.Operations;
using ControlPlane.Persistence;
using ControlPlane.Secrets;
using Microsoft.Extensions.Options;
using Provisioner.Messaging;

namespace ControlPlane.Instances;

/// <summary>
/// The truth about one hosted instance, and the orchestrator of its life. <see cref="InstanceLifecycleTable"/> says what
/// a verb or an outcome does, <see cref="InstanceTransitions"/> carries it out on the state, <see cref="OperationProgress"/>
/// orders the provisioner's events, <see cref="ReconcileSchedule"/> says when to check and when to give up. The grain
/// stores each change before it sends the command that follows from it (a write that fails changes and sends nothing),
/// and tells billing and the audit log (<see cref="SystemChanges"/>) what it stored.
/// </summary>
public sealed partial class InstanceGrain(
    [PersistentState("instance", StorageNames.ControlPlane)] IPersistentState<InstanceState> state,
    IProvisioningCommandBus commands,
    SecretEnvelopes envelopes,
    IOptions<ReconcileOptions> reconcileOptions,
    IOptions<RetentionOptions> retentionOptions,
    AuditLog audit,
    TimeProvider clock,
    ILogger<InstanceGrain> logger) : Grain, IInstanceGrain, IRemindable
{
    private const string ReminderName = "reconcile";

    private readonly ReconcileOptions _reconcile = reconcileOptions.Value;
    private readonly ReconcileSchedule _schedule = new(reconcileOptions.Value);
    private readonly InstanceTransitions _transitions = new(reconcileOptions.Value, retentionOptions.Value);
    private readonly BillingNotices _billing = new();

    private readonly CommandOutbox _outbox = new(commands);
    private readonly InstanceSecrets _secrets = new(envelopes);
    private OpenedPasswords? _passwords;
    private IGrainTimer? _timer;

    // Step progress stays in memory until the next write (an outcome, an observation): a crash loses only progress
    // notes, which the resumed command reports again. So a create costs two writes, not one per step.
    private bool _unsavedProgress;

    private InstanceState S => state.State;

    private DateTimeOffset Now => clock.GetUtcNow();

    private bool Live => state.RecordExists && S.Lifecycle != InstanceLifecycle.Deleted;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (state.RecordExists)
        {
            await MigrateSecretsAsync();
        }

        if (!Live)
        {
            return;
        }

        StartTimer();
        await NotifyBillingAsync();
        await AuditSystemChangesAsync();
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
        // Sealed before anything changes, so a key store that cannot be reached refuses the command and changes nothing.
        var newPassword = command.Verb is OperationType.Create or OperationType.RotateCredentials ? await _secrets.NewCustomerPasswordAsync(current) : null;
        var newPlatformPassword = command.Verb == OperationType.Create ? await _secrets.NewPlatformPasswordAsync(current) : null;
        var change = BeginChange();
        var operation = _transitions.Begin(current, InstanceLifecycleTable.Verb(command.Verb), command, before, Now);
        current.SealedPassword = newPassword ?? current.SealedPassword;
        current.SealedPlatformPassword = newPlatformPassword ?? current.SealedPlatformPassword;
        state.State = current;
        _passwords = await _secrets.OpenAsync(S);
        if (before is null)
        {
            await this.RegisterOrUpdateReminder(ReminderName, _reconcile.ReminderPeriod, _reconcile.ReminderPeriod);
        }

        EnqueueApply(ApplyPurpose.Operation, operation.Id);
        _schedule.Reset();
        await CommitAsync(change);
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

        var change = BeginChange();
        operation = InstanceTransitions.Cancel(S, operation, request.RequestedBy, Now);
        _outbox.Add(new CancelOperationCommand { InstanceId = S.Id, OperationId = operation.Id, IssuedAt = Now });
        await CommitAsync(change);
        return operation;
    }

    public Task<InstanceView?> GetAsync() => Task.FromResult(state.RecordExists ? S.ToView() : null);

    public Task<OperationRecord?> GetOperationAsync(string operationId) => Task.FromResult(state.RecordExists ? S.FindOperation(operationId) : null);

    public Task<Page<OperationRecord>> ListOperationsAsync(PageRequest page) =>
        Task.FromResult(Paging.Page(S.Operations.AsEnumerable().Reverse(), o => Paging.Key(o.CreatedAt, o.Id), descending: true, page));

    public Task<Page<InstanceEvent>> ListEventsAsync(PageRequest page) =>
        Task.FromResult(Paging.Page(S.Events.AsEnumerable().Reverse(), e => Paging.Key(e.Sequence), descending: true, page));

    public Task<InstanceCredentials> GetCredentialsAsync() =>
        Task.FromResult(state.RecordExists ? S.Credentials(Passwords) : throw Problems.NotFound("instance", this.GetPrimaryKeyString()));

    public Task WakeAsync() => Task.CompletedTask;

    public async Task ApplyEventAsync(ProvisioningEvent provisioningEvent)
    {
        if (!state.RecordExists)
        {
            return;
        }

        if (S.IsForActivePhase(provisioningEvent) && S.RunningOperation() is { } operation)
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

        if (!S.IsCurrentCheck(provisioningEvent))
        {
            // A late or duplicated event about work the instance has moved past: it must not move the instance backwards.
            LogIgnoredEvent(S.Id, provisioningEvent.GetType().Name, $"it is about generation {provisioningEvent.Generation} (now {S.Generation}) or finished work");
            return;
        }

        var change = BeginChange();
        var result = _transitions.Check(S, provisioningEvent, _schedule, Now);
        if (result.Changed)
        {
            LogChecked(S.Id, S.Events[^1].Kind, S.Events[^1].Message);
            await FollowAsync(change, result);
        }
    }

    public async Task RecordDeadLetterAsync(DeadLetteredCommand deadLetter)
    {
        if (!state.RecordExists)
        {
            return;
        }

        var change = BeginChange();
        var (what, ends) = InstanceTransitions.DeadLettered(S, deadLetter, Now);
        LogDeadLettered(S.Id, what);
        if (ends is { } phase)
        {
            await EndPhaseAsync(phase.Operation, phase.Outcome, change);
        }
        else
        {
            await CommitAsync(change);
        }
    }

    /// <summary>The current phase of the active operation ended: the table says what follows; store it, then send it.</summary>
    private async Task EndPhaseAsync(OperationRecord operation, PhaseOutcome outcome, Change? begun = null)
    {
        var change = begun ?? BeginChange();
        var result = _transitions.EndPhase(S, operation, outcome, Now);
        await FollowAsync(change, result);
        if (!Live)
        {
            await RetireAsync();
        }
    }

    /// <summary>Stores what a transition changed and sends the command it calls for.</summary>
    private async Task FollowAsync(Change change, ChangeResult result)
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

        await CommitAsync(change);
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
        await AuditSystemChangesAsync();
        switch (_schedule.OnTick(Now, S))
        {
            case ReconcileAction.ResendOperation:
                var change = BeginChange();
                var operation = S.RunningOperation()!;
                S.Replace(operation.WithLog(Now, $"No progress for {_reconcile.StallTimeout.TotalSeconds:0} s; sent the command again."));
                EnqueueApply(S.Active!.Phase, operation.Id);
                try
                {
                    await CommitAsync(change);
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
    private async Task CommitAsync(Change change)
    {
        try
        {
            BillingNotices.Stamp(S, Now);
            await change.State.WriteAsync(() => _outbox.TakeBack(change.OutboxMark));
        }
        catch (StoreUnavailableException unavailable)
        {
            // The state went back to what is stored, and with it any password the change made.
            _passwords = state.RecordExists ? await _secrets.OpenAsync(S) : null;
            LogWriteFailed(unavailable.Cause ?? unavailable, this.GetPrimaryKeyString());
            if (unavailable.StaleActivation)
            {
                DeactivateOnIdle();
            }

            throw;
        }

        _unsavedProgress = false;
        await NotifyBillingAsync();
        await AuditSystemChangesAsync();
        await SendOutboxAsync();
    }

    /// <summary>
    /// Writes the audit records of the system's own changes just stored, oldest first. One that fails waits for the next
    /// tick (or activation); one written twice after a crash is found by its request id and written once.
    /// </summary>
    private async Task AuditSystemChangesAsync()
    {
        if (!state.RecordExists)
        {
            return;
        }

        S.AuditedEventSequence ??= S.EventSequence;
        if (S.AuditedEventSequence == S.EventSequence)
        {
            // Every reconcile tick comes here: nothing new is the common case, and needs no walk over the events.
            return;
        }

        foreach (var (due, entry) in SystemChanges.Due(S).ToList())
        {
            if (entry is not null)
            {
                try
                {
                    await audit.RecordOnceAsync(entry);
                }
                catch (Exception exception)
                {
                    LogAuditFailed(exception, S.Id);
                    return;
                }
            }

            S.AuditedEventSequence = due.Sequence;
        }
    }

    /// <summary>Tells billing the lifecycle and size just stored when they change, and again every minute; a failure is retried on the next tick.</summary>
    private async Task NotifyBillingAsync()
    {
        if (state.RecordExists && await _billing.TellAsync(GrainFactory, S, Passwords.Platform, Now) is { } failure)
        {
            LogBillingNoticeFailed(failure, S.Id);
        }
    }

    private async Task SendOutboxAsync()
    {
        // Sent after the write: a crash in between loses only a command that the stall check or the next activation sends again.
        if (await _outbox.SendAsync() is { } failure)
        {
            // The bus is unreachable (a sidecar restarting): the state is stored, so the commands wait for the next tick.
            LogSendFailed(failure, S.Id, _outbox.Count);
        }
    }

    /// <summary>A change about to be made: the state as stored before it, and where its commands begin in the outbox.</summary>
    private Change BeginChange() => new(StateChange.Begin(state), _outbox.Mark);

    private void EnqueueApply(ApplyPurpose purpose, string? operationId) =>
        _outbox.Add(new ApplyDeploymentCommand { InstanceId = S.Id, OperationId = operationId, IssuedAt = Now, Purpose = purpose, Spec = S.Spec(Passwords) });

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

    private OpenedPasswords Passwords => _passwords ?? throw new InvalidOperationException($"The passwords of instance {S.Id} were not opened on activation.");

    /// <summary>
    /// Seals a password stored in plaintext (state from before encryption), gives the instance a platform password it
    /// lacks, re-wraps with the newest key version, and opens them for this activation.
    /// </summary>
    private async Task MigrateSecretsAsync()
    {
        var change = BeginChange();
        if (await _secrets.MigrateAsync(S))
        {
            try
            {
                await change.State.WriteAsync();
                LogSecretsMigrated(S.Id);
            }
            catch (StoreUnavailableException unavailable)
            {
                // The write undid the migration in memory; migrated again, it is stored with the grain's next write.
                LogWriteFailed(unavailable.Cause ?? unavailable, S.Id);
                await _secrets.MigrateAsync(S);
            }
        }

        _passwords = await _secrets.OpenAsync(S);
    }

    private sealed record Change(StateChange<InstanceState> State, int OutboxMark);
}
