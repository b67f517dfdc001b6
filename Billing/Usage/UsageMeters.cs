using System.Globalization;

namespace Billing.Usage;

/// <summary>
/// The dimensions instances are billed by, one Stripe meter each, and the source event ids that make every hourly
/// measurement land in the ledger once however often it is replayed.
/// </summary>
public static class UsageMeters
{
    /// <summary>
    /// Data commands the instance served: Garnet's <c>total_read_commands_processed + total_write_commands_processed</c>.
    /// Not <c>total_commands_processed</c>: that also counts AUTH, PING and INFO, which includes the platform's own health
    /// and SLA probes, and customers would pay for being watched.
    /// </summary>
    public const string Operations = "operations";

    /// <summary>Seconds in Running at one size: whole seconds stay integral through every sum and split by hour.</summary>
    public static string InstanceSeconds(string size) => $"{InstanceSecondsPrefix}{size}";

    /// <summary>The size an instance-seconds meter counts, or null for another meter.</summary>
    public static string? SizeOf(string meter) => meter.StartsWith(InstanceSecondsPrefix, StringComparison.Ordinal) ? meter[InstanceSecondsPrefix.Length..] : null;

    private const string InstanceSecondsPrefix = "instance_seconds_";

    /// <summary>E.g. <c>ins-…:instance_seconds_small:2026-11-27T10Z</c>: the instance, the meter and the hour it measures.</summary>
    public static string SourceEventId(string instanceId, string meter, DateTimeOffset hour) =>
        $"{instanceId}:{meter}:{hour.UtcDateTime.ToString("yyyy-MM-dd'T'HH", CultureInfo.InvariantCulture)}Z";

    public static DateTimeOffset HourOf(DateTimeOffset time) =>
        new(time.UtcTicks - (time.UtcTicks % TimeSpan.TicksPerHour), TimeSpan.Zero);
}

/// <summary>One reading of an instance's operation counter; <see cref="RunId"/> changes whenever its process restarts.</summary>
public sealed record OperationsReading(string RunId, long Count)
{
    /// <summary>Reads <c>INFO server stats</c> as Garnet answers it; null when a field is missing.</summary>
    public static OperationsReading? Parse(string? info)
    {
        var fields = GarnetInfo.Fields(info);
        var runId = GarnetInfo.RunId(fields);
        var reads = GarnetInfo.Count(fields, "total_read_commands_processed");
        var writes = GarnetInfo.Count(fields, "total_write_commands_processed");
        return runId is not null && reads is not null && writes is not null ? new OperationsReading(runId, reads.Value + writes.Value) : null;
    }

    /// <summary>
    /// Operations since <paramref name="previous"/>. A new run (the process restarted) started counting from zero, so all
    /// of its count is new; what the old run served after the previous reading died with it and cannot be billed.
    /// </summary>
    public long Since(OperationsReading? previous) =>
        previous is not null && previous.RunId == RunId && Count >= previous.Count ? Count - previous.Count : Count;
}
