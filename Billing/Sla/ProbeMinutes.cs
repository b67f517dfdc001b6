using System.Globalization;
using Billing.Usage;
using ControlPlane.Persistence;

namespace Billing.Sla;

/// <summary>
/// The probes of one instance in one minute (<see cref="Minute"/> counts minutes since the Unix epoch, UTC).
/// A minute is <b>bad</b> when more than half of its probes failed: at the default 10 s interval that is 4 of 6; with
/// one probe a minute, that probe failing. A minute without any probe (the control plane itself was down) is
/// <b>unmeasured</b>: <see cref="Run"/>, the instance's process as last seen in a minute, is what
/// <see cref="SlaCalculator"/> judges it by.
/// </summary>
public sealed class ProbeMinute(long minute)
{
    public long Minute { get; } = minute;

    public int Probes { get; set; }

    public int Failed { get; set; }

    /// <summary>Latencies of the successful probes (AUTH and PING), in milliseconds.</summary>
    public List<double> LatenciesMs { get; } = [];

    public bool IsBad => Failed * 2 > Probes;

    /// <summary>The process that last answered INFO in this minute, or null when none did.</summary>
    public ProcessSighting? Run { get; set; }

    public static long MinuteOf(DateTimeOffset time) => time.ToUnixTimeMilliseconds() / 60_000;

    public void Add(bool answered, TimeSpan latency)
    {
        Probes++;
        if (answered)
        {
            LatenciesMs.Add(Math.Round(latency.TotalMilliseconds, 3));
        }
        else
        {
            Failed++;
        }
    }

    /// <summary>Nearest-rank percentile of the successful probes' latencies, or null when none succeeded.</summary>
    public double? LatencyPercentile(int percentile)
    {
        if (LatenciesMs.Count == 0)
        {
            return null;
        }

        var sorted = LatenciesMs.Order().ToList();
        var rank = (int)Math.Ceiling(percentile / 100.0 * sorted.Count);
        return sorted[Math.Clamp(rank, 1, sorted.Count) - 1];
    }
}

/// <summary>Per-minute availability and latency of every probed instance, rewritten after each probe so a crash loses at most one.</summary>
public sealed class ProbeMinutes(Database database)
{
    public static readonly Migration Migration = new(
        "sla-0001-probe-minutes",
        Sqlite: Schema("REAL"),
        Postgres: Schema("DOUBLE PRECISION"));

    /// <summary>The process last seen in each minute, what proves an instance served through minutes nobody probed.</summary>
    public static readonly Migration RunMigration = Migration.Portable(
        "sla-0005-probe-minute-runs",
        """
        ALTER TABLE sla_probe_minutes ADD COLUMN run_id TEXT NULL;
        ALTER TABLE sla_probe_minutes ADD COLUMN uptime_seconds BIGINT NULL;
        ALTER TABLE sla_probe_minutes ADD COLUMN run_seen_at BIGINT NULL;
        """);

    private static string Schema(string floatType) => $"""
        CREATE TABLE sla_probe_minutes (
            instance_id  TEXT NOT NULL,
            minute       BIGINT NOT NULL,
            tenant_id    TEXT NOT NULL,
            probes       INTEGER NOT NULL,
            failed       INTEGER NOT NULL,
            p50_ms       {floatType} NULL,
            p99_ms       {floatType} NULL,
            latencies_ms TEXT NOT NULL,
            PRIMARY KEY (instance_id, minute)
        );
        """;

    public Task SaveAsync(string instanceId, string tenantId, ProbeMinute minute, CancellationToken cancellationToken = default) =>
        database.ExecuteAsync(
            """
            INSERT INTO sla_probe_minutes (instance_id, minute, tenant_id, probes, failed, p50_ms, p99_ms, latencies_ms, run_id, uptime_seconds, run_seen_at)
            VALUES (@instance, @minute, @tenant, @probes, @failed, @p50, @p99, @latencies, @run, @uptime, @seen)
            ON CONFLICT (instance_id, minute) DO UPDATE SET
                probes = excluded.probes, failed = excluded.failed, p50_ms = excluded.p50_ms,
                p99_ms = excluded.p99_ms, latencies_ms = excluded.latencies_ms,
                run_id = excluded.run_id, uptime_seconds = excluded.uptime_seconds, run_seen_at = excluded.run_seen_at
            """,
            cancellationToken,
            ("instance", instanceId),
            ("minute", minute.Minute),
            ("tenant", tenantId),
            ("probes", minute.Probes),
            ("failed", minute.Failed),
            ("p50", minute.LatencyPercentile(50)),
            ("p99", minute.LatencyPercentile(99)),
            ("latencies", string.Join(',', minute.LatenciesMs.Select(latency => latency.ToString("R", CultureInfo.InvariantCulture)))),
            ("run", minute.Run?.RunId),
            ("uptime", minute.Run?.UptimeSeconds),
            ("seen", minute.Run?.SeenAt.ToUnixTimeMilliseconds()));

    /// <summary>A minute already recorded (probing resumes mid-minute after a restart), or null.</summary>
    public async Task<ProbeMinute?> ReadAsync(string instanceId, long minute, CancellationToken cancellationToken = default)
    {
        var rows = await database.QueryAsync(
            "SELECT probes, failed, latencies_ms, run_id, uptime_seconds, run_seen_at FROM sla_probe_minutes WHERE instance_id = @instance AND minute = @minute",
            reader =>
            {
                var recorded = new ProbeMinute(minute) { Probes = reader.GetInt32(0), Failed = reader.GetInt32(1), Run = Sighting(reader, 3) };
                recorded.LatenciesMs.AddRange(reader.GetString(2)
                    .Split(',', StringSplitOptions.RemoveEmptyEntries)
                    .Select(latency => double.Parse(latency, CultureInfo.InvariantCulture)));
                return recorded;
            },
            cancellationToken,
            ("instance", instanceId),
            ("minute", minute));
        return rows.SingleOrDefault();
    }

    /// <summary>
    /// The probed minutes of an instance within [from, to), in order, after the last probed minute before
    /// <paramref name="from"/> if any: what a gap at the start of the period is judged by.
    /// </summary>
    public async Task<List<ProbedMinute>> ProbedAsync(string instanceId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken = default)
    {
        const string Columns = "minute, CASE WHEN failed * 2 > probes THEN 1 ELSE 0 END, run_id, uptime_seconds, run_seen_at";
        var before = await database.QueryAsync(
            $"SELECT {Columns} FROM sla_probe_minutes WHERE instance_id = @instance AND minute < @from ORDER BY minute DESC LIMIT 1",
            ReadProbed,
            cancellationToken,
            ("instance", instanceId),
            ("from", ProbeMinute.MinuteOf(from)));
        var within = await database.QueryAsync(
            $"SELECT {Columns} FROM sla_probe_minutes WHERE instance_id = @instance AND minute >= @from AND minute < @to ORDER BY minute",
            ReadProbed,
            cancellationToken,
            ("instance", instanceId),
            ("from", ProbeMinute.MinuteOf(from)),
            ("to", ProbeMinute.MinuteOf(to)));
        return [.. before, .. within];
    }

    private static ProbedMinute ReadProbed(System.Data.Common.DbDataReader reader) =>
        new(reader.GetInt64(0), reader.GetInt32(1) == 1, Sighting(reader, 2));

    private static ProcessSighting? Sighting(System.Data.Common.DbDataReader reader, int runColumn) =>
        reader.IsDBNull(runColumn)
            ? null
            : new ProcessSighting(reader.GetString(runColumn), reader.GetInt64(runColumn + 1), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(runColumn + 2)));

    /// <summary>How many minutes within [from, to) had probes, and the month's latency: the median of the minutes' p50 and the worst p99.</summary>
    public async Task<ProbeSummary> SummarizeAsync(string instanceId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken = default)
    {
        var rows = await database.QueryAsync(
            "SELECT p50_ms, p99_ms FROM sla_probe_minutes WHERE instance_id = @instance AND minute >= @from AND minute < @to",
            reader => (P50: reader.IsDBNull(0) ? (double?)null : reader.GetDouble(0), P99: reader.IsDBNull(1) ? (double?)null : reader.GetDouble(1)),
            cancellationToken,
            ("instance", instanceId),
            ("from", ProbeMinute.MinuteOf(from)),
            ("to", ProbeMinute.MinuteOf(to)));
        var medians = rows.Where(row => row.P50 is not null).Select(row => row.P50!.Value).Order().ToList();
        return new ProbeSummary(
            rows.Count,
            medians.Count == 0 ? null : medians[(medians.Count - 1) / 2],
            rows.Max(row => row.P99));
    }
}

/// <param name="MeasuredMinutes">Minutes with at least one probe.</param>
/// <param name="MedianP50Ms">The median of the per-minute p50 latencies.</param>
/// <param name="WorstP99Ms">The highest per-minute p99 latency.</param>
public sealed record ProbeSummary(long MeasuredMinutes, double? MedianP50Ms, double? WorstP99Ms);

/// <summary>What the SLA needs of one probed minute: whether it was bad, and the process last seen in it.</summary>
public sealed record ProbedMinute(long Minute, bool IsBad, ProcessSighting? Run = null);

/// <summary>
/// An instance's process as one probe saw it: Garnet's <c>run_id</c> (new whenever the process starts) and
/// <c>uptime_in_seconds</c> at <see cref="SeenAt"/> (billing's clock).
/// </summary>
public sealed record ProcessSighting(string RunId, long UptimeSeconds, DateTimeOffset SeenAt)
{
    /// <summary>
    /// Uptime is whole seconds and <see cref="SeenAt"/> is taken as the probe starts, so two sightings of one process may
    /// disagree with the clock between them by this much.
    /// </summary>
    public static readonly TimeSpan Tolerance = TimeSpan.FromSeconds(2);

    /// <summary>Reads <c>INFO server</c> as Garnet answers it; null when <c>run_id</c> or <c>uptime_in_seconds</c> is missing.</summary>
    public static ProcessSighting? Parse(string? info, DateTimeOffset seenAt)
    {
        var fields = GarnetInfo.Fields(info);
        return GarnetInfo.RunId(fields) is { } runId && GarnetInfo.Count(fields, "uptime_in_seconds") is { } uptime
            ? new ProcessSighting(runId, uptime, seenAt)
            : null;
    }

    /// <summary>
    /// Whether this process demonstrably ran from this sighting until <paramref name="later"/>: the same run, and by then
    /// up at least as long as it had been here plus the time in between.
    /// </summary>
    public bool RanThroughUntil(ProcessSighting later) =>
        later.RunId == RunId
        && later.SeenAt >= SeenAt
        && TimeSpan.FromSeconds(later.UptimeSeconds - UptimeSeconds) >= later.SeenAt - SeenAt - Tolerance;
}
