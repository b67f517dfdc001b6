namespace ControlPlane.Instances;

/// <summary>How often each instance compares its deployment with its spec (section <c>Reconcile</c>).</summary>
public sealed class ReconcileOptions
{
    public const string SectionName = "Reconcile";

    /// <summary>Between two checks of a healthy instance. A killed process is back within about this plus its start time.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>An operation with no progress for this long has its command sent again (commands are idempotent).</summary>
    public TimeSpan StallTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The Orleans reminder that re-activates an instance's grain after a restart or a silo failure.</summary>
    public TimeSpan ReminderPeriod { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>A running instance whose health check takes longer than this is <c>degraded</c>: it serves, but slowly.</summary>
    public TimeSpan DegradedLatency { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Longest wait between attempts to repair an instance that keeps failing.</summary>
    public TimeSpan MaxRepairBackoff { get; set; } = TimeSpan.FromMinutes(1);
}
