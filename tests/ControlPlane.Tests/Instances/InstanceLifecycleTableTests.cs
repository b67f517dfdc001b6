using ControlPlane.Errors;
using ControlPlane.Instances;
using ControlPlane.Operations;

namespace ControlPlane.Tests.Instances;

/// <summary>
/// The lifecycle table, exhaustively: every state × every trigger, against the lifecycle DESIGN.md and README describe,
/// written out here by hand so the table cannot drift from it unnoticed.
/// </summary>
public sealed class InstanceLifecycleTableTests
{
    private static readonly InstanceLifecycle?[] s_states = [null, .. Enum.GetValues<InstanceLifecycle>().Cast<InstanceLifecycle?>()];

    /// <summary>What each verb does from each state when nothing else runs: the state while it runs, or the refusal's type.</summary>
    private static readonly Dictionary<(InstanceLifecycle?, OperationType), string> s_verbs = Expected();

    [Fact]
    public void Every_state_and_verb_with_no_operation_running_is_allowed_into_its_in_between_state_or_refused_with_409_or_404()
    {
        var checkedPairs = 0;
        foreach (var state in s_states)
        {
            foreach (var verb in Enum.GetValues<OperationType>())
            {
                var expected = s_verbs[(state, verb)];
                var outcome = Outcome(() => InstanceLifecycleTable.Decide(state, LifecycleTrigger.For(verb), LifecycleContext.Idle, "ins-test"));
                Assert.True(expected == outcome, $"{state?.ToString() ?? "(new)"} + {verb}: expected {expected}, the table says {outcome}.");
                checkedPairs++;
            }
        }

        Assert.Equal(s_states.Length * Enum.GetValues<OperationType>().Length, checkedPairs);
    }

    [Fact]
    public void Every_verb_while_an_operation_runs_is_refused_naming_the_operation()
    {
        foreach (var state in s_states.OfType<InstanceLifecycle>())
        {
            foreach (var verb in Enum.GetValues<OperationType>())
            {
                var refusal = Assert.Throws<ControlPlaneException>(() =>
                    InstanceLifecycleTable.Decide(state, LifecycleTrigger.For(verb), new LifecycleContext("op-running", OperationType.Stop), "ins-test"));
                Assert.Equal((ProblemKind.Conflict, "operation-in-progress", "op-running"), (refusal.Kind, refusal.Type, refusal.Extensions["operationId"]));
            }
        }
    }

    [Theory]
    [InlineData(OperationType.Create, InstanceLifecycle.Provisioning, true)]
    [InlineData(OperationType.Scale, InstanceLifecycle.Updating, true)]
    [InlineData(OperationType.Upgrade, InstanceLifecycle.Stopped, true)]
    [InlineData(OperationType.Stop, InstanceLifecycle.Stopping, true)]
    [InlineData(OperationType.Start, InstanceLifecycle.Starting, true)]
    [InlineData(OperationType.Restart, InstanceLifecycle.Restarting, false)]
    [InlineData(OperationType.Delete, InstanceLifecycle.Deleting, false)]
    [InlineData(OperationType.RotateCredentials, InstanceLifecycle.Updating, false)]
    public void Cancel_is_allowed_only_going_forward_before_a_point_of_no_return_and_never_for_restart_or_delete(
        OperationType verb, InstanceLifecycle during, bool cancellable)
    {
        var forward = new LifecycleContext("op-1", verb, Cancellable: true);
        if (cancellable)
        {
            var decision = InstanceLifecycleTable.Decide(during, LifecycleTrigger.Cancel, forward)!;
            Assert.Equal((during, (OperationStatus?)null, Sends.Cancel), (decision.Next, decision.OperationEnds, decision.Sends));
        }
        else
        {
            Assert.Equal("operation-not-cancellable", Assert.Throws<ControlPlaneException>(() => InstanceLifecycleTable.Decide(during, LifecycleTrigger.Cancel, forward)).Type);
        }

        Assert.Equal("operation-not-cancellable", Assert.Throws<ControlPlaneException>(() =>
            InstanceLifecycleTable.Decide(during, LifecycleTrigger.Cancel, forward with { Cancellable = false })).Type);
        Assert.Equal("operation-not-cancellable", Assert.Throws<ControlPlaneException>(() =>
            InstanceLifecycleTable.Decide(during, LifecycleTrigger.Cancel, forward with { RollingBack = true })).Type);
        Assert.Equal("operation-not-cancellable", Assert.Throws<ControlPlaneException>(() =>
            InstanceLifecycleTable.Decide(InstanceLifecycle.Running, LifecycleTrigger.Cancel, LifecycleContext.Idle)).Type);
    }

    [Theory]
    // verb, from, during, after success, after a failure going forward (and what is sent)
    [InlineData(OperationType.Create, null, InstanceLifecycle.Provisioning, InstanceLifecycle.Running, InstanceLifecycle.Failed, Sends.ApplyCleanup)]
    [InlineData(OperationType.Scale, InstanceLifecycle.Running, InstanceLifecycle.Updating, InstanceLifecycle.Running, InstanceLifecycle.Updating, Sends.ApplyRollback)]
    [InlineData(OperationType.Upgrade, InstanceLifecycle.Stopped, InstanceLifecycle.Stopped, InstanceLifecycle.Stopped, InstanceLifecycle.Stopped, Sends.ApplyRollback)]
    [InlineData(OperationType.Start, InstanceLifecycle.Stopped, InstanceLifecycle.Starting, InstanceLifecycle.Running, InstanceLifecycle.Failed, Sends.ApplyCleanup)]
    [InlineData(OperationType.Start, InstanceLifecycle.Failed, InstanceLifecycle.Starting, InstanceLifecycle.Running, InstanceLifecycle.Failed, Sends.ApplyCleanup)]
    [InlineData(OperationType.Restart, InstanceLifecycle.Running, InstanceLifecycle.Restarting, InstanceLifecycle.Running, InstanceLifecycle.Failed, Sends.ApplyCleanup)]
    [InlineData(OperationType.Delete, InstanceLifecycle.Stopped, InstanceLifecycle.Deleting, InstanceLifecycle.Deleted, InstanceLifecycle.Failed, Sends.Nothing)]
    public void A_phase_that_converges_or_fails_leads_where_the_verb_says(
        OperationType verb, InstanceLifecycle? from, InstanceLifecycle during, InstanceLifecycle succeeded, InstanceLifecycle afterFailure, Sends onFailure)
    {
        var forward = new LifecycleContext("op-1", verb, StateBefore: from);

        var converged = InstanceLifecycleTable.Decide(during, LifecycleTrigger.Converged, forward)!;
        var failed = InstanceLifecycleTable.Decide(during, LifecycleTrigger.Failed, forward)!;

        Assert.Equal((succeeded, OperationStatus.Succeeded, Sends.Nothing), (converged.Next, converged.OperationEnds!.Value, converged.Sends));
        Assert.Equal((afterFailure, onFailure), (failed.Next, failed.Sends));
        Assert.Equal(onFailure == Sends.ApplyRollback ? null : OperationStatus.Failed, failed.OperationEnds);
    }

    [Theory]
    [InlineData(OperationType.Create, null, InstanceLifecycle.Provisioning, InstanceLifecycle.Deleted)]
    [InlineData(OperationType.Scale, InstanceLifecycle.Running, InstanceLifecycle.Updating, InstanceLifecycle.Running)]
    [InlineData(OperationType.Stop, InstanceLifecycle.Running, InstanceLifecycle.Stopping, InstanceLifecycle.Running)]
    [InlineData(OperationType.Start, InstanceLifecycle.Failed, InstanceLifecycle.Starting, InstanceLifecycle.Failed)]
    public void A_cancelled_or_failed_operation_rolls_back_to_the_state_it_started_from(
        OperationType verb, InstanceLifecycle? from, InstanceLifecycle during, InstanceLifecycle rolledBackTo)
    {
        var forward = new LifecycleContext("op-1", verb, StateBefore: from);
        var cancelled = InstanceLifecycleTable.Decide(during, LifecycleTrigger.CancelledAtSafePoint, forward)!;
        var back = forward with { RollingBack = true, Cancelled = true };

        var rolledBack = InstanceLifecycleTable.Decide(during, LifecycleTrigger.Converged, back)!;
        var afterFailure = InstanceLifecycleTable.Decide(during, LifecycleTrigger.Converged, back with { Cancelled = false })!;
        var rollbackFailed = InstanceLifecycleTable.Decide(during, LifecycleTrigger.Failed, back)!;

        Assert.Equal((during, Sends.ApplyRollback), (cancelled.Next, cancelled.Sends));
        Assert.Equal((rolledBackTo, OperationStatus.Cancelled), (rolledBack.Next, rolledBack.OperationEnds!.Value));
        Assert.Equal((rolledBackTo, OperationStatus.Failed), (afterFailure.Next, afterFailure.OperationEnds!.Value));
        Assert.Equal((InstanceLifecycle.Failed, OperationStatus.Failed), (rollbackFailed.Next, rollbackFailed.OperationEnds!.Value));
    }

    [Fact]
    public void A_failed_stop_keeps_what_serves()
    {
        var stopping = new LifecycleContext("op-1", OperationType.Stop, StateBefore: InstanceLifecycle.Running);

        Assert.Equal(InstanceLifecycle.Running, InstanceLifecycleTable.Decide(InstanceLifecycle.Stopping, LifecycleTrigger.Failed, stopping with { Serving = true })!.Next);
        Assert.Equal(InstanceLifecycle.Stopped, InstanceLifecycleTable.Decide(InstanceLifecycle.Stopping, LifecycleTrigger.Failed, stopping)!.Next);
    }

    [Fact]
    public void Outcomes_with_no_operation_waiting_for_them_and_a_crash_loop_outside_Running_are_not_transitions()
    {
        foreach (var state in s_states.OfType<InstanceLifecycle>())
        {
            foreach (var trigger in new[] { LifecycleTrigger.Converged, LifecycleTrigger.Failed, LifecycleTrigger.CancelledAtSafePoint })
            {
                Assert.Null(InstanceLifecycleTable.Decide(state, trigger, LifecycleContext.Idle));
            }

            var crashLoop = InstanceLifecycleTable.Decide(state, LifecycleTrigger.CrashLoop, LifecycleContext.Idle);
            Assert.Equal(state == InstanceLifecycle.Running ? (InstanceLifecycle?)InstanceLifecycle.Failed : null, crashLoop?.Next);
            Assert.Equal(state == InstanceLifecycle.Running ? Sends.ApplyCleanup : (Sends?)null, crashLoop?.Sends);
        }
    }

    [Fact]
    public void No_two_rows_apply_to_the_same_state_trigger_and_situation()
    {
        var contexts = new List<LifecycleContext> { LifecycleContext.Idle };
        foreach (var verb in Enum.GetValues<OperationType>())
        {
            foreach (var rollingBack in new[] { false, true })
            {
                foreach (var cancellable in new[] { false, true })
                {
                    contexts.Add(new LifecycleContext("op-1", verb, rollingBack, Cancelled: rollingBack, cancellable));
                }
            }
        }

        foreach (var group in InstanceLifecycleTable.Rows.GroupBy(row => (row.From, row.Trigger)))
        {
            foreach (var context in contexts)
            {
                Assert.True(group.Count(row => row.Applies(context)) <= 1, $"{group.Key} has several rows for {context}.");
            }
        }
    }

    [Fact]
    public void Every_state_says_how_billing_meters_it()
    {
        var metered = Enum.GetValues<InstanceLifecycle>().ToDictionary(state => state, InstanceLifecycleTable.Metered);

        Assert.Equal(Billing.Usage.MeteredState.Running, metered[InstanceLifecycle.Running]);
        Assert.Equal(Billing.Usage.MeteredState.Updating, metered[InstanceLifecycle.Restarting]);
        Assert.Equal(Billing.Usage.MeteredState.Stopped, metered[InstanceLifecycle.Starting]);
        Assert.Equal(Billing.Usage.MeteredState.Deleted, metered[InstanceLifecycle.Deleting]);
    }

    /// <summary>After changing the table, run this test once with CONTROLPLANE_UPDATE_README=1 to rewrite README's copy.</summary>
    [Fact]
    public void README_shows_exactly_this_table()
    {
        var path = Path.Combine(RepositoryRoot(), "README.md");
        var readme = File.ReadAllText(path);
        const string Start = "<!-- lifecycle-table:start (generated from InstanceLifecycleTable.ToMarkdown; a test keeps them equal) -->";
        const string End = "<!-- lifecycle-table:end -->";
        var (from, to) = (readme.IndexOf(Start, StringComparison.Ordinal) + Start.Length, readme.IndexOf(End, StringComparison.Ordinal));
        Assert.True(from >= Start.Length && to > from, "README.md lacks the lifecycle table's markers.");
        var generated = InstanceLifecycleTable.ToMarkdown().Trim().ReplaceLineEndings("\n");
        if (Environment.GetEnvironmentVariable("CONTROLPLANE_UPDATE_README") == "1")
        {
            File.WriteAllText(path, $"{readme[..from]}\n{generated}\n{readme[to..]}");
            return;
        }

        Assert.Equal(generated, readme[from..to].Trim().ReplaceLineEndings("\n"));
    }

    private static string Outcome(Func<LifecycleDecision?> decide)
    {
        try
        {
            return decide()?.Next.ToString() ?? "no row";
        }
        catch (ControlPlaneException refusal)
        {
            return $"{ControlPlane.Api.ProblemResponses.StatusFor(refusal.Kind)} {refusal.Type}";
        }
    }

    private static Dictionary<(InstanceLifecycle?, OperationType), string> Expected()
    {
        const string Invalid = "409 invalid-instance-state";
        const string Missing = "404 not-found";
        var expected = new Dictionary<(InstanceLifecycle?, OperationType), string>();
        foreach (var state in s_states)
        {
            foreach (var verb in Enum.GetValues<OperationType>())
            {
                expected[(state, verb)] = state is null ? Missing : Invalid;
            }
        }

        expected[(null, OperationType.Create)] = nameof(InstanceLifecycle.Provisioning);
        foreach (var change in new[] { OperationType.Scale, OperationType.Upgrade, OperationType.RotateCredentials })
        {
            expected[(InstanceLifecycle.Running, change)] = nameof(InstanceLifecycle.Updating);
            expected[(InstanceLifecycle.Stopped, change)] = nameof(InstanceLifecycle.Stopped);
        }

        expected[(InstanceLifecycle.Running, OperationType.Stop)] = nameof(InstanceLifecycle.Stopping);
        expected[(InstanceLifecycle.Stopped, OperationType.Start)] = nameof(InstanceLifecycle.Starting);
        expected[(InstanceLifecycle.Failed, OperationType.Start)] = nameof(InstanceLifecycle.Starting);
        expected[(InstanceLifecycle.Running, OperationType.Restart)] = nameof(InstanceLifecycle.Restarting);
        foreach (var resting in new[] { InstanceLifecycle.Running, InstanceLifecycle.Stopped, InstanceLifecycle.Failed })
        {
            expected[(resting, OperationType.Delete)] = nameof(InstanceLifecycle.Deleting);
        }

        return expected;
    }

    private static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "ControlPlane.slnx")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("The repository root (with ControlPlane.slnx) was not found above the test's directory.");
    }
}
