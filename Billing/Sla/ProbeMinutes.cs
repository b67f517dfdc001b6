using System.Globalization;
using ControlPlane.Persistence;

namespace Billing.Sla;

/// <summary>
/// The probes of one instance in one minute (<see cref="Minute"/> counts minutes since the Unix epoch, UTC).
/// A minute is <b>bad</b> when more than half of its probes failed: at the default 10 s interval that is 4 of 6; with
/// one probe a minute, that probe failing. A minute without any probe (the control plane itself was down) is not bad:
/// downtime is what the probes saw.
/// </summary>
public sealed class ProbeMinute(long minute)
{
    public long Minute { get; } = minute;

    public int Probes { get; set; }

    public int Failed { get; set; }

    /// <summary>Latencies of the successful probes (AUTH and PING), in milliseconds.</summary>
    public List<double> LatenciesMs { get; } = [];

    public bool IsBad => Failed * 2 > Probes;

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
            INSERT INTO sla_probe_minutes (instance_id, minute, tenant_id, probes, failed, p50_ms, p99_ms, latencies_ms)
            VALUES (@instance, @minute, @tenant, @probes, @failed, @p50, @p99, @latencies)
            ON CONFLICT (instance_id, minute) DO UPDATE SET
                probes = excluded.probes, failed = excluded.failed, p50_ms = excluded.p50_ms,
                p99_ms = excluded.p99_ms, latencies_ms = excluded.latencies_ms
            """,
            cancellationToken,
            ("instance", instanceId),
            ("minute", minute.Minute),
            ("tenant", tenantId),
            ("probes", minute.Probes),
            ("failed", minute.Failed),
            ("p50", minute.LatencyPercentile(50)),
            ("p99", minute.LatencyPercentile(99)),
            ("latencies", string.Join(',', minute.LatenciesMs.Select(latency => latency.ToString("R", CultureInfo.InvariantCulture)))));

    /// <summary>A minute already recorded (probing resumes mid-minute after a restart), or null.</summary>
    public async Task<ProbeMinute?> ReadAsync(string instanceId, long minute, CancellationToken cancellationToken = default)
    {
        var rows = await database.QueryAsync(
            "SELECT probes, failed, latencies_ms FROM sla_probe_minutes WHERE instance_id = @instance AND minute = @minute",
            reader =>
            {
                var recorded = new ProbeMinute(minute) { Probes = reader.GetInt32(0), Failed = reader.GetInt32(1) };
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

    /// <summary>The bad minutes of an instance within [from, to).</summary>
    public Task<List<long>> BadMinutesAsync(string instanceId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken = default) =>
        database.QueryAsync(
            "SELECT minute FROM sla_probe_minutes WHERE instance_id = @instance AND minute >= @from AND minute < @to AND failed * 2 > probes ORDER BY minute",
            reader => reader.GetInt64(0),
            cancellationToken,
            ("instance", instanceId),
            ("from", ProbeMinute.MinuteOf(from)),
            ("to", ProbeMinute.MinuteOf(to)));

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
