using ControlPlane.Instances;
using ControlPlane.Operations;
using Provisioner.Deployments;
using Provisioner.Messaging;

namespace ControlPlane.Tests.Instances;

/// <summary>
/// Every ordering case the instance grain handles, on the plain class that handles it: events of one run in order,
/// duplicated, overtaken, out of order; a run started again (a redelivery after a crash); late words of a retired run;
/// a rollback phase after the operation's own steps.
/// </summary>
public sealed class OperationProgressTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 29, 10, 0, 0, TimeSpan.Zero);

    private OperationRecord _operation = new()
    {
        Id = "op-1",
        TenantId = "tnt-1",
        InstanceId = "ins-1",
        Type = OperationType.Create,
        Status = OperationStatus.Pending,
        RequestedBy = "test",
        CreatedAt = T0,
        UpdatedAt = T0,
    };

    private readonly ActiveOperation _phase = new() { OperationId = "op-1", Verb = OperationType.Create };

    [Fact]
    public void Steps_of_one_run_in_order_are_recorded_with_their_times_and_the_outcome_ends_the_phase()
    {
        Apply(Started("run-a", 1, 1));
        Apply(Completed("run-a", 2, 1));
        Apply(Started("run-a", 3, 2));
        var outcome = Apply(Applied("run-a", 4));

        Assert.Null(outcome.Ignored);
        Assert.Equal(PhaseOutcomeKind.Converged, outcome.Outcome!.Kind);
        Assert.Equal(OperationStatus.Running, _operation.Status);
        Assert.Equal(["step 1", "step 2"], _operation.Steps.Select(step => step.Name));
        Assert.All(_operation.Steps, step => Assert.Equal(StepStatus.Succeeded, step.Status));
        Assert.Equal(T0.AddSeconds(2), _operation.Steps[0].CompletedAt);
        Assert.Equal(3, _operation.TotalSteps);
    }

    [Fact]
    public void An_event_delivered_twice_counts_once()
    {
        Apply(Started("run-a", 1, 1));
        var again = Apply(Started("run-a", 1, 1));

        Assert.NotNull(again.Ignored);
        Assert.Single(_operation.Steps);
        Assert.Single(_operation.Log);
    }

    [Fact]
    public void An_event_overtaken_by_a_later_one_of_its_run_is_dropped_and_the_step_whose_start_was_overtaken_keeps_both_times()
    {
        // The completion (sequence 2) arrives before the start (sequence 1) it overtook.
        Apply(Completed("run-a", 2, 1, startedAt: T0.AddSeconds(1)));
        var late = Apply(Started("run-a", 1, 1));

        Assert.NotNull(late.Ignored);
        var step = Assert.Single(_operation.Steps);
        Assert.Equal((StepStatus.Succeeded, T0.AddSeconds(1), T0.AddSeconds(2)), (step.Status, step.StartedAt, step.CompletedAt));
    }

    [Fact]
    public void A_step_whose_events_never_came_is_listed_under_its_number_when_a_later_step_starts()
    {
        Apply(Started("run-a", 1, 3));

        Assert.Equal(["Step 1", "Step 2", "step 3"], _operation.Steps.Select(step => step.Name));
        Assert.Equal(StepStatus.Running, _operation.Steps[2].Status);
    }

    [Fact]
    public void A_run_started_again_marks_the_running_step_interrupted_and_numbers_its_own_steps_after_it()
    {
        Apply(Started("run-a", 1, 1));
        Apply(Started("run-b", 1, 1));
        Apply(Completed("run-b", 2, 1));

        Assert.Equal(["step 1", "step 1"], _operation.Steps.Select(step => step.Name));
        Assert.Equal([StepStatus.Interrupted, StepStatus.Succeeded], _operation.Steps.Select(step => step.Status));
        Assert.Contains(_operation.Log, line => line.Message.Contains("started the command again", StringComparison.Ordinal));
        Assert.Equal(["run-a"], _phase.RetiredExecutionIds);
    }

    [Fact]
    public void A_retired_run_may_still_end_the_phase_but_its_late_steps_change_nothing()
    {
        Apply(Started("run-a", 1, 1));
        Apply(Started("run-b", 1, 1));

        var lateStep = Apply(Completed("run-a", 2, 1));
        var outcome = Apply(Applied("run-a", 3));

        Assert.NotNull(lateStep.Ignored);
        Assert.Equal(PhaseOutcomeKind.Converged, outcome.Outcome!.Kind);
    }

    [Fact]
    public void A_failure_marks_the_running_step_failed_and_carries_the_error()
    {
        Apply(Started("run-a", 1, 1));
        var outcome = Apply(new DeploymentFailed
        {
            InstanceId = "ins-1", OperationId = "op-1", Generation = 1, Purpose = ApplyPurpose.Operation, OccurredAt = T0.AddSeconds(5),
            ExecutionId = "run-a", Sequence = 2, ErrorCode = "process-exited", ErrorMessage = "It exited.", Observed = ObservedDeployment.Absent,
        });

        Assert.Equal((PhaseOutcomeKind.Failed, "process-exited"), (outcome.Outcome!.Kind, outcome.Outcome.Error!.Code));
        Assert.Equal(StepStatus.Failed, _operation.Steps.Single().Status);
    }

    [Fact]
    public void A_rollback_phase_numbers_its_steps_after_the_operation_s_and_names_them_as_a_rollback()
    {
        Apply(Started("run-a", 1, 2));
        OperationProgress.BeginPhase(_phase, ApplyPurpose.Rollback, _operation.Steps.Length);
        Apply(Started("run-r", 1, 1));

        Assert.Equal("Roll back: step 1", _operation.Steps[^1].Name);
        Assert.Equal(2 + 3, _operation.TotalSteps);
        Assert.Null(_phase.RetiredExecutionIds.FirstOrDefault());
    }

    [Fact]
    public void Events_without_a_run_are_applied_as_they_come()
    {
        Apply(Started(execution: null, 0, 1));
        var outcome = Apply(Applied(execution: null, 0));

        Assert.Equal(PhaseOutcomeKind.Converged, outcome.Outcome!.Kind);
        Assert.Equal(StepStatus.Succeeded, _operation.Steps.Single().Status);
    }

    private ProgressUpdate Apply(ProvisioningEvent provisioningEvent)
    {
        var update = OperationProgress.Apply(_operation, _phase, provisioningEvent, T0.AddMinutes(1));
        _operation = update.Operation;
        return update;
    }

    private static DeploymentStepStarted Started(string? execution, int sequence, int step) => new()
    {
        InstanceId = "ins-1", OperationId = "op-1", Generation = 1, Purpose = ApplyPurpose.Operation, OccurredAt = T0.AddSeconds(sequence),
        ExecutionId = execution, Sequence = sequence, StepNumber = step, StepCount = 3, StepName = $"step {step}",
    };

    private static DeploymentStepCompleted Completed(string execution, int sequence, int step, DateTimeOffset? startedAt = null) => new()
    {
        InstanceId = "ins-1", OperationId = "op-1", Generation = 1, Purpose = ApplyPurpose.Operation, OccurredAt = T0.AddSeconds(sequence),
        ExecutionId = execution, Sequence = sequence, StepNumber = step, StepCount = 3, StepName = $"step {step}", StartedAt = startedAt,
    };

    private static DeploymentApplied Applied(string? execution, int sequence) => new()
    {
        InstanceId = "ins-1", OperationId = "op-1", Generation = 1, Purpose = ApplyPurpose.Operation, OccurredAt = T0.AddSeconds(sequence),
        ExecutionId = execution, Sequence = sequence, Observed = ObservedDeployment.Absent,
    };
}
