using Billing.Usage;
using ControlPlane.Errors;
using ControlPlane.Operations;
using ControlPlane.Security;
using Provisioner.Deployments;

namespace ControlPlane.Instances;

/// <summary>
/// The lifecycle of DESIGN.md. Running, Stopped and Failed are where an instance rests; every other state lasts as
/// long as one operation. <c>Degraded</c> is a health condition of a Running instance, not a state.
/// </summary>
public enum InstanceLifecycle
{
    Provisioning,
    Running,
    Updating,
    Stopping,
    Stopped,
    Starting,
    Restarting,
    Deleting,
    Deleted,
    Failed,
}

/// <summary>What a failed phase of a verb's operation leads to.</summary>
public enum FailurePolicy
{
    /// <summary>Go back to what ran before, with the data: the operation fails, the instance is as it was.</summary>
    RollBack,

    /// <summary>The instance does not serve: it is Failed with the reason, and what half-started is cleaned up.</summary>
    Fail,

    /// <summary>Believe what the provisioner saw: Running if it still serves, otherwise Stopped.</summary>
    KeepWhatServes,
}

/// <summary>What the instance sends the provisioner when a transition is taken.</summary>
public enum Sends
{
    Nothing,
    /// <summary>Apply the operation's spec, reporting each step.</summary>
    ApplyOperation,
    /// <summary>Apply the spec the instance had before the operation, reporting each step.</summary>
    ApplyRollback,
    /// <summary>Apply the spec left after a failure (nothing serving), as a reconcile.</summary>
    ApplyCleanup,
    /// <summary>Stop the running command at its next safe point.</summary>
    Cancel,
}

/// <summary>
/// One instance verb, declared once: the API maps its route from it, the tenant grain passes it on, and the instance
/// grain runs it through the one generic path. A new verb is a new entry in <see cref="InstanceLifecycleTable.Verbs"/>
/// (and, if no existing deployment primitive does what it needs, one in <see cref="DeploymentSpec"/>).
/// </summary>
public sealed record InstanceVerb
{
    public required OperationType Type { get; init; }

    /// <summary>The custom method of <c>POST …/instances/{id}:{Action}</c>; null for a verb with a shape of its own (create, PATCH, DELETE).</summary>
    public string? Action { get; init; }

    /// <summary>The audit log's action, e.g. <c>instance.restart</c>.</summary>
    public required string AuditAction { get; init; }

    /// <summary>For the OpenAPI document.</summary>
    public required string Summary { get; init; }

    /// <summary>The states it may start from (null: a new instance), each with the state the instance is in while it runs.</summary>
    public required IReadOnlyList<(InstanceLifecycle? From, InstanceLifecycle During)> Transitions { get; init; }

    /// <summary>How it changes what the deployment should be.</summary>
    public required Func<DesiredDeployment, InstanceCommand, DesiredDeployment> Desire { get; init; }

    public required FailurePolicy OnFailure { get; init; }

    /// <summary>Under <see cref="FailurePolicy.Fail"/>, the goal left behind (cleaned up to); null leaves the goal as it was.</summary>
    public DeploymentGoal? GoalAfterFailure { get; init; }

    /// <summary>Why it cannot be cancelled; null when a cancel rolls it back to where it started.</summary>
    public string? NotCancellableBecause { get; init; }

    /// <summary>What a caller must hold to run it.</summary>
    public Permission Permission { get; init; } = Permissions.InstancesOperate;
}

/// <summary>What the grain knows when it asks the table: the operation running, if any, and what the provisioner saw.</summary>
/// <param name="Cancelled">The operation rolls back because a person cancelled it (not because it failed).</param>
/// <param name="StateBefore">The state the operation started from (null for a create).</param>
/// <param name="Serving">The provisioner's last observation found the instance answering.</param>
public sealed record LifecycleContext(
    string? ActiveOperationId = null,
    OperationType? ActiveVerb = null,
    bool RollingBack = false,
    bool Cancelled = false,
    bool Cancellable = true,
    InstanceLifecycle? StateBefore = null,
    bool Serving = false)
{
    public static LifecycleContext Idle { get; } = new();
}

/// <summary>What a trigger leads to: the next state, how the operation ends (null: it goes on), and what is sent.</summary>
public sealed record LifecycleDecision(InstanceLifecycle Next, OperationStatus? OperationEnds, Sends Sends, string Rule);

/// <summary>
/// The instance state machine as one table: every state, every trigger (a person's verb or cancel, the provisioner's
/// outcome of a phase, the reconcile loop's verdict), the next state, the guard, and what is sent. The grain asks
/// <see cref="Decide"/> and does what it answers; README's "How it works" shows <see cref="Rows"/>.
/// </summary>
public static class InstanceLifecycleTable
{
    public static IReadOnlyList<InstanceVerb> Verbs { get; } =
    [
        new()
        {
            Type = OperationType.Create, AuditAction = "instance.create", Summary = "Create an instance",
            Transitions = [(null, InstanceLifecycle.Provisioning)],
            Desire = (desired, _) => desired,
            OnFailure = FailurePolicy.Fail, GoalAfterFailure = DeploymentGoal.Absent,
        },
        new()
        {
            Type = OperationType.Scale, AuditAction = "instance.update", Summary = "Scale (size) or upgrade (version) an instance",
            Transitions = [(InstanceLifecycle.Running, InstanceLifecycle.Updating), (InstanceLifecycle.Stopped, InstanceLifecycle.Stopped)],
            Desire = ChangeVersionOrSize,
            OnFailure = FailurePolicy.RollBack,
        },
        new()
        {
            Type = OperationType.Upgrade, AuditAction = "instance.update", Summary = "Scale (size) or upgrade (version) an instance",
            Transitions = [(InstanceLifecycle.Running, InstanceLifecycle.Updating), (InstanceLifecycle.Stopped, InstanceLifecycle.Stopped)],
            Desire = ChangeVersionOrSize,
            OnFailure = FailurePolicy.RollBack,
        },
        new()
        {
            Type = OperationType.Stop, Action = "stop", AuditAction = "instance.stop", Summary = "Stop an instance (data and endpoint kept)",
            Transitions = [(InstanceLifecycle.Running, InstanceLifecycle.Stopping)],
            Desire = (desired, _) => desired with { Goal = DeploymentGoal.Stopped },
            OnFailure = FailurePolicy.KeepWhatServes,
        },
        new()
        {
            Type = OperationType.Start, Action = "start", AuditAction = "instance.start", Summary = "Start a stopped or failed instance",
            Transitions = [(InstanceLifecycle.Stopped, InstanceLifecycle.Starting), (InstanceLifecycle.Failed, InstanceLifecycle.Starting)],
            Desire = (desired, _) => desired with { Goal = DeploymentGoal.Running },
            OnFailure = FailurePolicy.Fail, GoalAfterFailure = DeploymentGoal.Stopped,
        },
        new()
        {
            Type = OperationType.Restart, Action = "restart", AuditAction = "instance.restart", Summary = "Restart a running instance (data and endpoint kept)",
            Transitions = [(InstanceLifecycle.Running, InstanceLifecycle.Restarting)],
            Desire = (desired, _) => desired with { Restarts = desired.Restarts + 1 },
            OnFailure = FailurePolicy.Fail, GoalAfterFailure = DeploymentGoal.Stopped,
            NotCancellableBecause = "a restart stops the process at once; there is nothing to roll back to.",
        },
        new()
        {
            Type = OperationType.RotateCredentials, Action = "rotateCredentials", AuditAction = "instance.credentials.rotate",
            Summary = "Give the instance a new password; the old one is refused from then on",
            Transitions = [(InstanceLifecycle.Running, InstanceLifecycle.Updating), (InstanceLifecycle.Stopped, InstanceLifecycle.Stopped)],
            // The new password is the grain's to make (sealed); the deployment's shape stays.
            Desire = (desired, _) => desired,
            OnFailure = FailurePolicy.KeepWhatServes,
            NotCancellableBecause = "the new password is in force once the operation starts; rotate again instead.",
            Permission = Permissions.CredentialsRotate,
        },
        new()
        {
            Type = OperationType.Delete, AuditAction = "instance.delete", Summary = "Delete an instance and its data",
            Transitions =
            [
                (InstanceLifecycle.Running, InstanceLifecycle.Deleting),
                (InstanceLifecycle.Stopped, InstanceLifecycle.Deleting),
                (InstanceLifecycle.Failed, InstanceLifecycle.Deleting),
            ],
            Desire = (desired, _) => desired with { Goal = DeploymentGoal.Absent },
            OnFailure = FailurePolicy.Fail,
            NotCancellableBecause = "a delete removes the instance's data and cannot be undone.",
        },
    ];

    /// <summary>Where instances rest, and whether the reconcile loop keeps their deployment matching the spec there.</summary>
    public static bool IsReconciled(InstanceLifecycle state) => state is InstanceLifecycle.Running or InstanceLifecycle.Stopped;

    public static InstanceVerb Verb(OperationType type) => Verbs.Single(verb => verb.Type == type);

    /// <summary>The lifecycle as billing meters it: customer stops and changes are not SLA time; only Running is billed time.</summary>
    public static MeteredState Metered(InstanceLifecycle state) => state switch
    {
        InstanceLifecycle.Provisioning => MeteredState.Provisioning,
        InstanceLifecycle.Running => MeteredState.Running,
        InstanceLifecycle.Updating or InstanceLifecycle.Restarting => MeteredState.Updating,
        InstanceLifecycle.Stopping or InstanceLifecycle.Stopped or InstanceLifecycle.Starting => MeteredState.Stopped,
        InstanceLifecycle.Failed => MeteredState.Failed,
        InstanceLifecycle.Deleting or InstanceLifecycle.Deleted => MeteredState.Deleted,
        _ => throw new ArgumentOutOfRangeException(nameof(state), state, "Every state must say how it is metered."),
    };

    /// <summary>The state a deployment goal means once reached.</summary>
    public static InstanceLifecycle Reached(DeploymentGoal goal) => goal switch
    {
        DeploymentGoal.Running => InstanceLifecycle.Running,
        DeploymentGoal.Stopped => InstanceLifecycle.Stopped,
        DeploymentGoal.Absent => InstanceLifecycle.Deleted,
        _ => throw new ArgumentOutOfRangeException(nameof(goal), goal, "Unknown goal."),
    };

    /// <summary>
    /// What <paramref name="trigger"/> does to an instance in <paramref name="state"/> (null: it does not exist yet).
    /// A person's verb that is not allowed throws the refusal the API answers with (409); a provisioner outcome with
    /// no row means nothing is waiting for it, and answers null.
    /// </summary>
    public static LifecycleDecision? Decide(InstanceLifecycle? state, LifecycleTrigger trigger, LifecycleContext context, string instanceId = "")
    {
        if (trigger.Verb is { } type)
        {
            return DecideVerb(state, Verb(type), context, instanceId);
        }

        var row = Rows.FirstOrDefault(row => row.From == state && row.Trigger == trigger && row.Applies(context));
        if (trigger == LifecycleTrigger.Cancel && row is null)
        {
            throw NotCancellable(context);
        }

        return row?.Decide(context);
    }

    /// <summary>Every row of the table, in the order README shows them.</summary>
    public static IReadOnlyList<LifecycleRow> Rows { get; } = BuildRows();

    /// <summary>The verbs and every row as Markdown tables: README's "How it works" holds exactly this (a test compares them).</summary>
    public static string ToMarkdown()
    {
        var text = new System.Text.StringBuilder();
        text.AppendLine("| Verb | API | From → while it runs | If it fails | Cancel |");
        text.AppendLine("|---|---|---|---|---|");
        foreach (var verb in Verbs)
        {
            var api = verb.Type switch
            {
                OperationType.Create => "`POST …/instances`",
                OperationType.Scale or OperationType.Upgrade => "`PATCH …/instances/{id}`",
                OperationType.Delete => "`DELETE …/instances/{id}`",
                _ => $"`POST …/instances/{{id}}:{verb.Action}`",
            };
            var from = string.Join(", ", verb.Transitions.Select(t => $"{t.From?.ToString() ?? "(new)"} → {t.During}"));
            var failure = verb.OnFailure switch
            {
                FailurePolicy.RollBack => "rolls back to what ran before",
                FailurePolicy.KeepWhatServes => "Running if it still serves, else Stopped",
                _ => verb.GoalAfterFailure is { } goal ? $"Failed; cleaned up to {goal.ToString().ToLowerInvariant()}" : "Failed; retry it",
            };
            text.AppendLine($"| {verb.Type.ToString().ToLowerInvariant()} | {api} | {from} | {failure} | {verb.NotCancellableBecause ?? "rolls back to where it started"} |");
        }

        text.AppendLine();
        text.AppendLine("| State | Trigger | When | Next state | Sends |");
        text.AppendLine("|---|---|---|---|---|");
        foreach (var row in Rows)
        {
            var sends = row.Decision(LifecycleContext.Idle).Sends;
            text.AppendLine($"| {row.From?.ToString() ?? "(new)"} | {row.Trigger} | {row.Guard} | {row.ToDescription} | {(sends == Sends.Nothing ? "—" : sends.ToString())} |");
        }

        return text.ToString();
    }

    private static LifecycleDecision DecideVerb(InstanceLifecycle? state, InstanceVerb verb, LifecycleContext context, string instanceId)
    {
        if (context is { ActiveOperationId: { } running, ActiveVerb: { } runningVerb })
        {
            throw Problems.OperationInProgress(instanceId, running, runningVerb.ToString().ToLowerInvariant());
        }

        var row = Rows.FirstOrDefault(row => row.From == state && row.Trigger == LifecycleTrigger.For(verb.Type));
        return row?.Decide(context) ?? throw (state is null
            ? Problems.NotFound("instance", instanceId)
            : Problems.InvalidState(instanceId, state.Value.ToString(), verb.Type.ToString().ToLowerInvariant(), HintFor(state.Value)));
    }

    private static List<LifecycleRow> BuildRows()
    {
        var rows = new List<LifecycleRow>();
        foreach (var verb in Verbs)
        {
            foreach (var (from, during) in verb.Transitions)
            {
                rows.Add(LifecycleRow.Fixed(from, LifecycleTrigger.For(verb.Type), "no operation is running", during, null, Sends.ApplyOperation));
            }
        }

        foreach (var verb in Verbs)
        {
            var forward = $"{verb.Type.ToString().ToLowerInvariant()} going forward";
            var back = $"{verb.Type.ToString().ToLowerInvariant()} rolling back";
            foreach (var during in verb.Transitions.Select(transition => transition.During).Distinct())
            {
                bool Forward(LifecycleContext c) => c.ActiveVerb == verb.Type && !c.RollingBack;
                bool Back(LifecycleContext c) => c.ActiveVerb == verb.Type && c.RollingBack;
                if (verb.NotCancellableBecause is null)
                {
                    rows.Add(new(during, LifecycleTrigger.Cancel, $"{forward}, not past a point of no return", c => Forward(c) && c.Cancellable,
                        during, "(same; cancelling)", _ => new(during, null, Sends.Cancel, "")));
                }

                var succeeded = Reached(verb.Type switch
                {
                    OperationType.Stop => DeploymentGoal.Stopped,
                    OperationType.Delete => DeploymentGoal.Absent,
                    OperationType.Scale or OperationType.Upgrade or OperationType.RotateCredentials when during == InstanceLifecycle.Stopped => DeploymentGoal.Stopped,
                    _ => DeploymentGoal.Running,
                });
                rows.Add(LifecycleRow.Fixed(during, LifecycleTrigger.Converged, forward, succeeded, OperationStatus.Succeeded, Sends.Nothing, Forward));
                rows.Add(FailureRow(verb, during, forward, Forward));
                if (verb.NotCancellableBecause is null)
                {
                    rows.Add(new(during, LifecycleTrigger.CancelledAtSafePoint, forward, Forward, during, "(same; rolling back)",
                        _ => new(during, null, Sends.ApplyRollback, "")));
                    rows.Add(new(during, LifecycleTrigger.Converged, back, Back, null, "the state before the operation",
                        c => new(c.StateBefore ?? InstanceLifecycle.Deleted, c.Cancelled ? OperationStatus.Cancelled : OperationStatus.Failed, Sends.Nothing, "")));
                    rows.Add(LifecycleRow.Fixed(during, LifecycleTrigger.Failed, back, InstanceLifecycle.Failed, OperationStatus.Failed, Sends.Nothing, Back));
                }
            }
        }

        rows.Add(LifecycleRow.Fixed(InstanceLifecycle.Running, LifecycleTrigger.CrashLoop, "restarted too often within the crash-loop window",
            InstanceLifecycle.Failed, null, Sends.ApplyCleanup));
        return rows;
    }

    private static LifecycleRow FailureRow(InstanceVerb verb, InstanceLifecycle during, string forward, Func<LifecycleContext, bool> guard) => verb.OnFailure switch
    {
        FailurePolicy.RollBack => new(during, LifecycleTrigger.Failed, forward, guard, during, "(same; rolling back)",
            _ => new(during, null, Sends.ApplyRollback, "")),
        FailurePolicy.KeepWhatServes => new(during, LifecycleTrigger.Failed, forward, guard, null, "Running if it still serves, else Stopped",
            c => new(c.Serving ? InstanceLifecycle.Running : InstanceLifecycle.Stopped, OperationStatus.Failed, Sends.Nothing, "")),
        _ => LifecycleRow.Fixed(during, LifecycleTrigger.Failed, forward, InstanceLifecycle.Failed, OperationStatus.Failed,
            verb.GoalAfterFailure is null ? Sends.Nothing : Sends.ApplyCleanup, guard),
    };

    private static ControlPlaneException NotCancellable(LifecycleContext context) =>
        context.ActiveVerb is not { } verb
            ? Problems.NotCancellable(context.ActiveOperationId ?? "", "no operation is running.")
            : Problems.NotCancellable(
                context.ActiveOperationId ?? "",
                Verb(verb).NotCancellableBecause ?? (context.RollingBack ? "it is already rolling back." : "it is past a point of no return."));

    private static DesiredDeployment ChangeVersionOrSize(DesiredDeployment desired, InstanceCommand command) =>
        desired with { Version = command.Version ?? desired.Version, Size = command.Size ?? desired.Size };

    private static string HintFor(InstanceLifecycle state) => state switch
    {
        InstanceLifecycle.Stopped => "Start it first.",
        InstanceLifecycle.Failed => "Start it again or delete it.",
        InstanceLifecycle.Running => "It is already running.",
        InstanceLifecycle.Deleted => "It was deleted.",
        _ => "Wait for the current change to finish.",
    };
}

/// <summary>What can happen to an instance: a person's verb or cancel, the outcome of a phase, or the reconcile loop's verdict.</summary>
public readonly record struct LifecycleTrigger(string Name, OperationType? Verb = null)
{
    public static LifecycleTrigger Cancel { get; } = new("cancel");
    public static LifecycleTrigger Converged { get; } = new("converged");
    public static LifecycleTrigger Failed { get; } = new("failed");
    public static LifecycleTrigger CancelledAtSafePoint { get; } = new("stopped at a safe point");
    public static LifecycleTrigger CrashLoop { get; } = new("crash loop");

    public static LifecycleTrigger For(OperationType verb) => new(verb.ToString().ToLowerInvariant(), verb);

    /// <summary>Every trigger there is, for the exhaustive test and README.</summary>
    public static IReadOnlyList<LifecycleTrigger> All { get; } =
        [.. Enum.GetValues<OperationType>().Select(For), Cancel, Converged, Failed, CancelledAtSafePoint, CrashLoop];

    public override string ToString() => Name;
}

/// <summary>One row: in <see cref="From"/>, on <see cref="Trigger"/>, when <see cref="Guard"/> holds, go to <see cref="To"/> and send.</summary>
public sealed record LifecycleRow(
    InstanceLifecycle? From,
    LifecycleTrigger Trigger,
    string Guard,
    Func<LifecycleContext, bool> Applies,
    InstanceLifecycle? To,
    string ToDescription,
    Func<LifecycleContext, LifecycleDecision> Decision)
{
    public static LifecycleRow Fixed(
        InstanceLifecycle? from, LifecycleTrigger trigger, string guard, InstanceLifecycle to, OperationStatus? ends, Sends sends,
        Func<LifecycleContext, bool>? applies = null) =>
        new(from, trigger, guard, applies ?? (_ => true), to, to.ToString(), _ => new(to, ends, sends, ""));

    public LifecycleDecision Decide(LifecycleContext context) => Decision(context) with { Rule = $"{From?.ToString() ?? "(new)"} + {Trigger} [{Guard}]" };
}
