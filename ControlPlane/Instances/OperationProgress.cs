using ControlPlane.Operations;
using Provisioner.Deployments;
using Provisioner.Messaging;

namespace ControlPlane.Instances;

/// <summary>How a phase of the active operation ended, as the provisioner reported it.</summary>
public enum PhaseOutcomeKind
{
    Converged,
    Failed,
    Cancelled,
}

public sealed record PhaseOutcome(PhaseOutcomeKind Kind, ObservedDeployment? Observed, DateTimeOffset ObservedAt, OperationError? Error = null)
{
    public LifecycleTrigger Trigger => Kind switch
    {
        PhaseOutcomeKind.Converged => LifecycleTrigger.Converged,
        PhaseOutcomeKind.Failed => LifecycleTrigger.Failed,
        _ => LifecycleTrigger.CancelledAtSafePoint,
    };
}

/// <summary>What one event did to the operation: its new version, and the phase's outcome when the event was one.</summary>
/// <param name="Ignored">Why the event changed nothing (a duplicate, overtaken, from a retired run); null when it counted.</param>
public sealed record ProgressUpdate(OperationRecord Operation, PhaseOutcome? Outcome, string? Ignored = null);

/// <summary>
/// Turns a worker's events about the active operation's current phase into steps, log lines and an outcome. Over a bus
/// events arrive at least once and in any order: each carries its run (<see cref="ProvisioningEvent.ExecutionId"/>) and
/// its place in that run (<see cref="ProvisioningEvent.Sequence"/>), and this puts them back in order, drops duplicates
/// and overtaken ones, and shows a run that started again (a redelivery after a crash) as an interrupted step followed by
/// the new run's steps. Changes <paramref name="phase"/> (the persisted run bookkeeping) in place.
/// </summary>
public static class OperationProgress
{
    private const int MaxRetiredRuns = 16;

    public static ProgressUpdate Apply(OperationRecord operation, ActiveOperation phase, ProvisioningEvent provisioningEvent, DateTimeOffset now)
    {
        var restarted = false;
        if (provisioningEvent.ExecutionId is { } execution)
        {
            if (execution != phase.ExecutionId)
            {
                // A run that was given up for a newer one may still speak; only its outcome counts (it converged to the same spec).
                if (phase.RetiredExecutionIds.Contains(execution) && !provisioningEvent.IsOutcome)
                {
                    return new(operation, null, "a step of a run that was started again");
                }

                if (phase.ExecutionId is { } previous && !provisioningEvent.IsOutcome)
                {
                    phase.RetiredExecutionIds.Add(previous);
                    if (phase.RetiredExecutionIds.Count > MaxRetiredRuns)
                    {
                        phase.RetiredExecutionIds.RemoveAt(0);
                    }

                    operation = MarkRunningStep(operation, StepStatus.Interrupted, now);
                    phase.StepOffset = operation.Steps.Length;
                    operation = operation.WithLog(now, "The provisioner started the command again (it was delivered again, after an interruption or as a duplicate); its steps follow.");
                    restarted = true;
                }

                phase.ExecutionId = execution;
                phase.Sequence = 0;
            }

            if (provisioningEvent.Sequence <= phase.Sequence)
            {
                return new(operation, null, "delivered twice, or overtaken by a later event of the same run");
            }

            phase.Sequence = provisioningEvent.Sequence;
        }

        switch (provisioningEvent)
        {
            case DeploymentStepStarted started when phase.StepOffset + started.StepNumber <= operation.Steps.Length && !restarted:
            case DeploymentStepCompleted completed when operation.Steps.ElementAtOrDefault(phase.StepOffset + completed.StepNumber - 1) is { Status: not StepStatus.Running } && !restarted:
                return new(operation, null, "the step is already recorded");

            case DeploymentStepStarted started:
                operation = AddStep(operation, phase, started.StepNumber, started.StepCount, started.StepName, started.OccurredAt, now);
                return new(operation.WithLog(now, $"Step {phase.StepOffset + started.StepNumber}/{operation.TotalSteps} started: {operation.Steps[^1].Name}."), null);

            case DeploymentStepCompleted completed:
                var index = phase.StepOffset + completed.StepNumber - 1;
                if (index >= operation.Steps.Length)
                {
                    // Its start is still on the way (events overtake each other on a bus): record the step, done now.
                    operation = AddStep(operation, phase, completed.StepNumber, completed.StepCount, completed.StepName, completed.StartedAt, now);
                }

                operation = operation with
                {
                    Steps = operation.Steps.SetItem(index, operation.Steps[index] with { Status = StepStatus.Succeeded, CompletedAt = completed.OccurredAt }),
                };
                return new(operation.WithLog(now, $"Step {index + 1}/{operation.TotalSteps} done."), null);

            case DeploymentApplied applied:
                // The phase converged: a step whose completion is still on its way (or was overtaken) is done too.
                return new(StepsBefore(operation, phase, operation.Steps.Length, now), new(PhaseOutcomeKind.Converged, applied.Observed, applied.OccurredAt));

            case DeploymentFailed failed:
                return new(
                    MarkRunningStep(operation, StepStatus.Failed, now),
                    new(PhaseOutcomeKind.Failed, failed.Observed, failed.OccurredAt, new OperationError { Code = failed.ErrorCode, Message = failed.ErrorMessage }));

            case DeploymentCancelled cancelled:
                operation = MarkRunningStep(operation, StepStatus.Cancelled, now).WithLog(now, "Stopped at a safe point.");
                return new(operation, new(PhaseOutcomeKind.Cancelled, cancelled.Observed, cancelled.OccurredAt));

            default:
                return new(operation, null, $"an event of unknown kind {provisioningEvent.GetType().Name}");
        }
    }

    /// <summary>A new phase (the operation, then perhaps its rollback) starts numbering its steps after the ones before it.</summary>
    public static void BeginPhase(ActiveOperation phase, ApplyPurpose purpose, int stepsSoFar)
    {
        phase.Phase = purpose;
        phase.StepOffset = stepsSoFar;
        phase.ExecutionId = null;
        phase.Sequence = 0;
        phase.RetiredExecutionIds.Clear();
    }

    /// <summary>The running step, if any, ends with <paramref name="status"/>.</summary>
    public static OperationRecord MarkRunningStep(OperationRecord operation, StepStatus status, DateTimeOffset now)
    {
        var index = operation.Steps.Length - 1;
        return index >= 0 && operation.Steps[index].Status == StepStatus.Running
            ? operation with { Steps = operation.Steps.SetItem(index, operation.Steps[index] with { Status = status, CompletedAt = now }) }
            : operation;
    }

    private static OperationRecord AddStep(
        OperationRecord operation, ActiveOperation phase, int stepNumber, int stepCount, string stepName, DateTimeOffset? startedAt, DateTimeOffset now)
    {
        operation = StepsBefore(operation, phase, phase.StepOffset + stepNumber - 1, now);
        var name = phase.Phase == ApplyPurpose.Rollback ? $"Roll back: {stepName}" : stepName;
        return operation with
        {
            Status = operation.Status == OperationStatus.Pending ? OperationStatus.Running : operation.Status,
            TotalSteps = phase.StepOffset + stepCount,
            Steps = operation.Steps.Add(new OperationStep { Name = name, Status = StepStatus.Running, StartedAt = startedAt }),
        };
    }

    /// <summary>
    /// Before step <paramref name="count"/>+1 is recorded: every earlier step of the phase has finished (a later one
    /// started), and one whose events never came is listed under its number rather than left out.
    /// </summary>
    private static OperationRecord StepsBefore(OperationRecord operation, ActiveOperation phase, int count, DateTimeOffset now)
    {
        var steps = operation.Steps.ToBuilder();
        for (var index = phase.StepOffset; index < steps.Count; index++)
        {
            if (steps[index].Status == StepStatus.Running)
            {
                steps[index] = steps[index] with { Status = StepStatus.Succeeded, CompletedAt = now };
            }
        }

        while (steps.Count < count)
        {
            var name = $"Step {steps.Count - phase.StepOffset + 1}";
            steps.Add(new OperationStep { Name = phase.Phase == ApplyPurpose.Rollback ? $"Roll back: {name}" : name, Status = StepStatus.Succeeded });
        }

        return operation with { Steps = steps.ToImmutable() };
    }
}
