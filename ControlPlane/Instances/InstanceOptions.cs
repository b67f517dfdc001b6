using Microsoft.Extensions.Options;

namespace ControlPlane.Instances;

/// <summary>Section <c>Instances</c>.</summary>
public sealed class InstanceOptions
{
    public const string SectionName = "Instances";

    /// <summary>Where new instances are deployed: <c>local</c> (OS processes) unless configured otherwise.</summary>
    public string DefaultBackend { get; set; } = "local";
}

/// <summary>How each instance keeps its deployment matching its spec (section <c>Reconcile</c>).</summary>
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

    /// <summary>Longest wait between attempts to repair an instance that keeps failing or crashing (the backoff doubles up to it).</summary>
    public TimeSpan MaxRepairBackoff { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>A process that runs but has not answered an authenticated PING for this long (hung, stopped) is restarted.</summary>
    public TimeSpan LivenessTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>This many restarts nobody asked for within <see cref="CrashLoopWindow"/> is a crash loop: the instance is Failed.</summary>
    public int CrashLoopRestarts { get; set; } = 5;

    public TimeSpan CrashLoopWindow { get; set; } = TimeSpan.FromMinutes(10);
}

public sealed class ReconcileOptionsValidator : IValidateOptions<ReconcileOptions>
{
    public ValidateOptionsResult Validate(string? name, ReconcileOptions options)
    {
        var failures = new List<string>();
        void Positive(TimeSpan value, string setting)
        {
            if (value <= TimeSpan.Zero)
            {
                failures.Add($"{ReconcileOptions.SectionName}:{setting} must be a positive time span, e.g. \"00:00:30\" (it is {value}).");
            }
        }

        Positive(options.Interval, nameof(options.Interval));
        Positive(options.StallTimeout, nameof(options.StallTimeout));
        if (options.DegradedLatency < TimeSpan.Zero)
        {
            failures.Add($"{ReconcileOptions.SectionName}:DegradedLatency must not be negative (0 counts every answer as slow).");
        }
        Positive(options.MaxRepairBackoff, nameof(options.MaxRepairBackoff));
        Positive(options.LivenessTimeout, nameof(options.LivenessTimeout));
        Positive(options.CrashLoopWindow, nameof(options.CrashLoopWindow));
        if (options.ReminderPeriod < TimeSpan.FromMinutes(1))
        {
            failures.Add($"{ReconcileOptions.SectionName}:ReminderPeriod must be at least 00:01:00 (Orleans reminders tick at most once a minute).");
        }

        if (options.CrashLoopRestarts < 1)
        {
            failures.Add($"{ReconcileOptions.SectionName}:CrashLoopRestarts must be at least 1 (it is {options.CrashLoopRestarts}).");
        }

        if (options.LivenessTimeout < options.Interval)
        {
            failures.Add($"{ReconcileOptions.SectionName}:LivenessTimeout ({options.LivenessTimeout}) must be at least Interval ({options.Interval}): liveness is judged on reconciles.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

/// <summary>How long history is kept (section <c>Retention</c>); the audit log, not grain state, is the permanent record.</summary>
public sealed class RetentionOptions
{
    public const string SectionName = "Retention";

    /// <summary>Per instance, at least the last this many operations are kept…</summary>
    public int Operations { get; set; } = 100;

    /// <summary>…and every operation of this long ago or newer.</summary>
    public TimeSpan OperationAge { get; set; } = TimeSpan.FromDays(30);

    /// <summary>A deleted instance's state is removed this long after its deletion (its id then answers 404).</summary>
    public TimeSpan DeletedInstances { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Per tenant, the newest this many Idempotency-Key records are kept (each for at most 24 hours).</summary>
    public int IdempotencyKeysPerTenant { get; set; } = 1000;
}

public sealed class RetentionOptionsValidator : IValidateOptions<RetentionOptions>
{
    public ValidateOptionsResult Validate(string? name, RetentionOptions options)
    {
        var failures = new List<string>();
        if (options.Operations < 1)
        {
            failures.Add($"{RetentionOptions.SectionName}:Operations must be at least 1 (it is {options.Operations}).");
        }

        if (options.OperationAge < TimeSpan.Zero || options.DeletedInstances < TimeSpan.Zero)
        {
            failures.Add($"{RetentionOptions.SectionName}:OperationAge and DeletedInstances must not be negative.");
        }

        if (options.IdempotencyKeysPerTenant < 1)
        {
            failures.Add($"{RetentionOptions.SectionName}:IdempotencyKeysPerTenant must be at least 1 (it is {options.IdempotencyKeysPerTenant}).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
