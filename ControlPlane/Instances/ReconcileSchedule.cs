using Provisioner.Deployments;

namespace ControlPlane.Instances;

/// <summary>What the reconcile timer does on a tick.</summary>
public enum ReconcileAction
{
    Wait,
    /// <summary>The operation made no progress for the stall timeout: send its command again (commands are idempotent).</summary>
    ResendOperation,
    /// <summary>Check the deployment against the spec, repairing drift.</summary>
    Check,
}

/// <summary>What a check's outcome calls for beyond recording it.</summary>
public enum CheckVerdict
{
    Nothing,
    /// <summary>The process runs but has not answered for the liveness timeout: restart it.</summary>
    Restart,
    /// <summary>Restarted too often within the window: give up, the instance is Failed.</summary>
    CrashLoop,
}

/// <summary>
/// When an instance's reconcile timer acts, and what the outcome of a check means: one check in flight at a time,
/// a stalled operation's command sent again, repairs and restarts backed off exponentially (capped), a process that
/// stays up without answering restarted (liveness), and a crash loop recognised by the restarts nobody asked for.
/// The restart history it keeps in <see cref="InstanceState"/> is persisted with the instance; the rest is per activation.
/// </summary>
public sealed class ReconcileSchedule(ReconcileOptions options)
{
    private DateTimeOffset? _checkSentAt;
    private DateTimeOffset? _operationResentAt;
    private DateTimeOffset _notBefore;
    private int _failedRepairs;
    private DateTimeOffset? _unansweredSince;

    public ReconcileAction OnTick(DateTimeOffset now, InstanceState state)
    {
        if (state.RunningOperation() is { } operation)
        {
            var quietSince = _operationResentAt is { } resent && resent > operation.UpdatedAt ? resent : operation.UpdatedAt;
            if (now - quietSince < options.StallTimeout)
            {
                return ReconcileAction.Wait;
            }

            _operationResentAt = now;
            return ReconcileAction.ResendOperation;
        }

        if (!InstanceLifecycleTable.IsReconciled(state.Lifecycle)
            || (_checkSentAt is { } sent && now - sent < options.StallTimeout)
            || now < _notBefore)
        {
            return ReconcileAction.Wait;
        }

        _checkSentAt = now;
        return ReconcileAction.Check;
    }

    /// <summary>A check goes out now (on a tick, or at once for a liveness restart).</summary>
    public void CheckSent(DateTimeOffset now) => _checkSentAt = now;

    /// <summary>An operation began or ended: what was in flight belongs to the past.</summary>
    public void Reset()
    {
        _checkSentAt = null;
        _operationResentAt = null;
        _unansweredSince = null;
    }

    /// <summary>An operation's phase observed the deployment: its process starts are planned, not restarts.</summary>
    public static void ObservedByOperation(InstanceState state, ObservedDeployment observed) => state.ProcessStarts = observed.ProcessStarts;

    /// <summary>A check ended, converged (<paramref name="failed"/> false) or not; <paramref name="detail"/> says what was found.</summary>
    /// <returns>What to do about it, and how long the next check waits (zero: the usual interval).</returns>
    public (CheckVerdict Verdict, TimeSpan Backoff) OnChecked(DateTimeOffset now, InstanceState state, ObservedDeployment observed, string? detail, bool failed)
    {
        _checkSentAt = null;
        _failedRepairs = failed ? _failedRepairs + 1 : 0;
        var restarted = RecordRestart(now, state, observed, detail);
        if (restarted && state.RecentRestarts.Count >= options.CrashLoopRestarts)
        {
            return (CheckVerdict.CrashLoop, TimeSpan.Zero);
        }

        var backoff = Backoff(Math.Max(_failedRepairs, restarted ? state.RecentRestarts.Count : 0));
        _notBefore = now + backoff;
        if (!failed && observed.Status is DeploymentStatus.Running or DeploymentStatus.Starting && observed.Health != DeploymentHealth.Healthy)
        {
            _unansweredSince ??= now;
            if (now - _unansweredSince >= options.LivenessTimeout)
            {
                _unansweredSince = null;
                return (CheckVerdict.Restart, backoff);
            }
        }
        else
        {
            _unansweredSince = null;
        }

        return (CheckVerdict.Nothing, backoff);
    }

    private bool RecordRestart(DateTimeOffset now, InstanceState state, ObservedDeployment observed, string? detail)
    {
        var known = state.ProcessStarts;
        state.ProcessStarts = observed.ProcessStarts;
        state.RecentRestarts.RemoveAll(restart => now - restart.At > options.CrashLoopWindow);
        if (known is not { } before || observed.ProcessStarts <= before)
        {
            return false;
        }

        state.RecentRestarts.Add(new UnplannedRestart(now, detail ?? "The process was started again."));
        return true;
    }

    /// <summary>Nothing after a success; the interval doubled per failure or recent restart, up to the cap.</summary>
    private TimeSpan Backoff(int count) => count == 0
        ? TimeSpan.Zero
        : TimeSpan.FromTicks(Math.Min(options.MaxRepairBackoff.Ticks, options.Interval.Ticks * (1L << Math.Min(count, 20))));
}
