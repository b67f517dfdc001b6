using ControlPlane.Instances;
using ControlPlane.Operations;
using Provisioner.Deployments;

namespace ControlPlane.Tests.Instances;

/// <summary>When the reconcile timer acts and what a check's outcome means, on a clock the test moves.</summary>
public sealed class ReconcileScheduleTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 29, 10, 0, 0, TimeSpan.Zero);

    private readonly ReconcileOptions _options = new()
    {
        Interval = TimeSpan.FromSeconds(2),
        StallTimeout = TimeSpan.FromSeconds(60),
        MaxRepairBackoff = TimeSpan.FromSeconds(30),
        LivenessTimeout = TimeSpan.FromSeconds(10),
        CrashLoopRestarts = 3,
        CrashLoopWindow = TimeSpan.FromMinutes(5),
    };

    private readonly InstanceState _state = new() { Id = "ins-1", Lifecycle = InstanceLifecycle.Running, ProcessStarts = 1 };

    [Fact]
    public void One_check_is_in_flight_at_a_time_until_its_outcome_or_the_stall_timeout()
    {
        var schedule = new ReconcileSchedule(_options);

        Assert.Equal(ReconcileAction.Check, schedule.OnTick(T0, _state));
        Assert.Equal(ReconcileAction.Wait, schedule.OnTick(T0.AddSeconds(2), _state));
        Assert.Equal(ReconcileAction.Check, schedule.OnTick(T0.AddSeconds(61), _state));
        schedule.OnChecked(T0.AddSeconds(62), _state, Healthy(starts: 1), detail: null, failed: false);
        Assert.Equal(ReconcileAction.Check, schedule.OnTick(T0.AddSeconds(63), _state));
    }

    [Theory]
    [InlineData(InstanceLifecycle.Failed)]
    [InlineData(InstanceLifecycle.Deleted)]
    [InlineData(InstanceLifecycle.Provisioning)]
    public void Only_resting_running_or_stopped_instances_are_checked(InstanceLifecycle lifecycle)
    {
        _state.Lifecycle = lifecycle;

        Assert.Equal(ReconcileAction.Wait, new ReconcileSchedule(_options).OnTick(T0, _state));
    }

    [Fact]
    public void A_stalled_operation_s_command_is_sent_again_once_per_stall_timeout()
    {
        var schedule = new ReconcileSchedule(_options);
        _state.Active = new ActiveOperation { OperationId = "op-1", Verb = OperationType.Stop };
        _state.Operations.Add(new OperationRecord
        {
            Id = "op-1", TenantId = "tnt-1", InstanceId = "ins-1", Type = OperationType.Stop, Status = OperationStatus.Running,
            RequestedBy = "test", CreatedAt = T0, UpdatedAt = T0,
        });

        Assert.Equal(ReconcileAction.Wait, schedule.OnTick(T0.AddSeconds(59), _state));
        Assert.Equal(ReconcileAction.ResendOperation, schedule.OnTick(T0.AddSeconds(60), _state));
        Assert.Equal(ReconcileAction.Wait, schedule.OnTick(T0.AddSeconds(90), _state));
        Assert.Equal(ReconcileAction.ResendOperation, schedule.OnTick(T0.AddSeconds(120), _state));
    }

    [Fact]
    public void Failed_repairs_back_off_doubling_up_to_the_cap_and_a_success_resets_it()
    {
        var schedule = new ReconcileSchedule(_options);
        var waits = new List<TimeSpan>();
        for (var attempt = 0; attempt < 6; attempt++)
        {
            waits.Add(schedule.OnChecked(T0, _state, Healthy(starts: 1) with { Status = DeploymentStatus.Stopped }, "could not start", failed: true).Backoff);
        }

        Assert.Equal([4, 8, 16, 30, 30, 30], waits.Select(wait => (int)wait.TotalSeconds));
        Assert.Equal(ReconcileAction.Wait, schedule.OnTick(T0.AddSeconds(29), _state));
        Assert.Equal(ReconcileAction.Check, schedule.OnTick(T0.AddSeconds(30), _state));
        Assert.Equal(TimeSpan.Zero, schedule.OnChecked(T0.AddSeconds(31), _state, Healthy(starts: 1), null, failed: false).Backoff);
    }

    [Fact]
    public void Restarts_nobody_asked_for_back_off_and_too_many_within_the_window_are_a_crash_loop_that_keeps_the_first_crash()
    {
        var schedule = new ReconcileSchedule(_options);

        var first = schedule.OnChecked(T0, _state, Healthy(starts: 2), "process 10 exited with code 134. Last lines: out of memory", failed: false);
        var second = schedule.OnChecked(T0.AddSeconds(20), _state, Healthy(starts: 3), "process 11 exited with code 134", failed: false);
        var third = schedule.OnChecked(T0.AddSeconds(60), _state, Healthy(starts: 4), "process 12 exited with code 134", failed: false);

        Assert.Equal((CheckVerdict.Nothing, TimeSpan.FromSeconds(4)), first);
        Assert.Equal((CheckVerdict.Nothing, TimeSpan.FromSeconds(8)), second);
        Assert.Equal(CheckVerdict.CrashLoop, third.Verdict);
        Assert.Contains("out of memory", _state.RecentRestarts[0].Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Restarts_older_than_the_window_no_longer_count()
    {
        var schedule = new ReconcileSchedule(_options);

        schedule.OnChecked(T0, _state, Healthy(starts: 2), "crash", failed: false);
        schedule.OnChecked(T0.AddMinutes(1), _state, Healthy(starts: 3), "crash", failed: false);
        var later = schedule.OnChecked(T0.AddMinutes(10), _state, Healthy(starts: 4), "crash", failed: false);

        Assert.Equal(CheckVerdict.Nothing, later.Verdict);
        Assert.Single(_state.RecentRestarts);
    }

    [Fact]
    public void Starts_made_by_an_operation_are_not_restarts()
    {
        var schedule = new ReconcileSchedule(_options);

        ReconcileSchedule.ObservedByOperation(_state, Healthy(starts: 5));
        schedule.OnChecked(T0, _state, Healthy(starts: 5), null, failed: false);

        Assert.Empty(_state.RecentRestarts);
    }

    [Fact]
    public void A_process_that_runs_without_answering_for_the_liveness_timeout_is_restarted_once()
    {
        var schedule = new ReconcileSchedule(_options);
        var hung = Healthy(starts: 1) with { Status = DeploymentStatus.Starting, Health = DeploymentHealth.Unhealthy };

        var verdicts = new[] { 0, 4, 9, 10, 12 }.Select(second => schedule.OnChecked(T0.AddSeconds(second), _state, hung, null, failed: false).Verdict).ToList();
        schedule.OnChecked(T0.AddSeconds(14), _state, Healthy(starts: 1), null, failed: false);
        var afterRecovery = schedule.OnChecked(T0.AddSeconds(20), _state, hung, null, failed: false).Verdict;

        Assert.Equal([CheckVerdict.Nothing, CheckVerdict.Nothing, CheckVerdict.Nothing, CheckVerdict.Restart, CheckVerdict.Nothing], verdicts);
        Assert.Equal(CheckVerdict.Nothing, afterRecovery);
    }

    private static ObservedDeployment Healthy(long starts) => new() { Status = DeploymentStatus.Running, Health = DeploymentHealth.Healthy, ProcessStarts = starts };
}
