using Microsoft.Extensions.Options;

namespace Billing.Sla;

/// <summary>How availability is measured and months are closed (section <c>Billing:Sla</c>).</summary>
public sealed class SlaOptions
{
    public const string SectionName = "Billing:Sla";

    /// <summary>Between two probes of an instance whose SLA counts (and two samples of its operation counter).</summary>
    public TimeSpan ProbeInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>A probe not answered within this fails.</summary>
    public TimeSpan ProbeTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long after a month ends it is closed: the last minute's probes land first.</summary>
    public TimeSpan CloseDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The longest maintenance window an SRE may announce at once.</summary>
    public TimeSpan MaxMaintenanceWindow { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Planned maintenance is announced at least this long before it starts; emergency maintenance may start at once (and counts against the SLA).</summary>
    public TimeSpan MaintenanceNotice { get; set; } = TimeSpan.FromHours(72);

    /// <summary>Planned maintenance an instance may have in one calendar month (its own windows and its tenant's together).</summary>
    public TimeSpan MaxMaintenancePerMonth { get; set; } = TimeSpan.FromHours(24);

    /// <summary>The Orleans reminder that brings an instance's metering back after a restart until its usage is all in the ledger.</summary>
    public TimeSpan ReminderPeriod { get; set; } = TimeSpan.FromMinutes(5);
}

public sealed class SlaOptionsValidator : IValidateOptions<SlaOptions>
{
    public ValidateOptionsResult Validate(string? name, SlaOptions options)
    {
        var failures = new List<string>();
        if (options.ProbeInterval < TimeSpan.FromSeconds(1))
        {
            failures.Add($"{SlaOptions.SectionName}:ProbeInterval must be at least one second.");
        }

        if (options.ProbeTimeout <= TimeSpan.Zero || options.ProbeTimeout > options.ProbeInterval)
        {
            failures.Add($"{SlaOptions.SectionName}:ProbeTimeout must be positive and no longer than ProbeInterval.");
        }

        if (options.CloseDelay < TimeSpan.Zero)
        {
            failures.Add($"{SlaOptions.SectionName}:CloseDelay must not be negative.");
        }

        if (options.MaxMaintenanceWindow <= TimeSpan.Zero)
        {
            failures.Add($"{SlaOptions.SectionName}:MaxMaintenanceWindow must be positive.");
        }

        if (options.MaintenanceNotice < TimeSpan.Zero)
        {
            failures.Add($"{SlaOptions.SectionName}:MaintenanceNotice must not be negative.");
        }

        if (options.MaxMaintenancePerMonth < options.MaxMaintenanceWindow)
        {
            failures.Add($"{SlaOptions.SectionName}:MaxMaintenancePerMonth ({options.MaxMaintenancePerMonth}) must be at least MaxMaintenanceWindow ({options.MaxMaintenanceWindow}).");
        }

        if (options.ReminderPeriod < TimeSpan.FromMinutes(1))
        {
            failures.Add($"{SlaOptions.SectionName}:ReminderPeriod must be at least one minute (Orleans reminders are not finer).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
