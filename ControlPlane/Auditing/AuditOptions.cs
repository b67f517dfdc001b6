using Microsoft.Extensions.Options;

namespace ControlPlane.Auditing;

/// <summary>Section <c>Audit</c>.</summary>
public sealed class AuditOptions
{
    public const string SectionName = "Audit";

    /// <summary>How often the chain's head is written outside the database (a line in <c>&lt;dataDir&gt;/audit-heads</c> and a log line).</summary>
    public TimeSpan HeadInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Records older than this many days are archived to <see cref="ArchiveDirectory"/>, then removed from the database.</summary>
    public int RetentionDays { get; set; } = 400;

    /// <summary>How often retention looks for records to archive.</summary>
    public TimeSpan ArchiveInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Where archived records go, as JSON lines; relative to the data directory. Default <c>audit-archive</c> in it.</summary>
    public string ArchiveDirectory { get; set; } = "audit-archive";
}

public sealed class AuditOptionsValidator : IValidateOptions<AuditOptions>
{
    public const int MaxRetentionDays = 36_500;

    public ValidateOptionsResult Validate(string? name, AuditOptions options)
    {
        var failures = new List<string>();
        if (options.HeadInterval < TimeSpan.FromSeconds(1) || options.HeadInterval > TimeSpan.FromDays(1))
        {
            failures.Add($"{AuditOptions.SectionName}:HeadInterval must be between 00:00:01 and 1.00:00:00 (it is {options.HeadInterval}); e.g. Audit__HeadInterval=00:01:00.");
        }

        if (options.RetentionDays is < 1 or > MaxRetentionDays)
        {
            failures.Add($"{AuditOptions.SectionName}:RetentionDays must be between 1 and {MaxRetentionDays} (it is {options.RetentionDays}); e.g. Audit__RetentionDays=400.");
        }

        if (options.ArchiveInterval < TimeSpan.FromSeconds(1))
        {
            failures.Add($"{AuditOptions.SectionName}:ArchiveInterval must be at least 00:00:01 (it is {options.ArchiveInterval}); e.g. Audit__ArchiveInterval=01:00:00.");
        }

        if (string.IsNullOrWhiteSpace(options.ArchiveDirectory))
        {
            failures.Add($"{AuditOptions.SectionName}:ArchiveDirectory must name a directory (absolute, or relative to the data directory), e.g. Audit__ArchiveDirectory=audit-archive.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
