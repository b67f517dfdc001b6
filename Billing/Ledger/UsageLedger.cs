using System.Data.Common;
using System.Text;
using System.Text.RegularExpressions;
using Billing.Usage;
using ControlPlane.Persistence;
using Npgsql;

namespace Billing.Ledger;

/// <summary>
/// The usage ledger in SQLite or PostgreSQL. A row is never updated: a source event id is kept once (a unique
/// constraint, so a replay after a crash adds nothing), and a correction is another row with a negative quantity.
/// In the same transaction as the rows, it adds them to <c>usage_hourly</c>, the per-hour totals the Stripe outbox
/// reads, so those totals always equal the ledger's sum.
/// </summary>
public sealed partial class UsageLedger(Database database, TimeProvider clock) : IUsageLedger
{
    /// <summary>
    /// Rows per statement. SQLite finds each named parameter by a linear scan of the statement's names, so binding costs
    /// the square of the parameters: a hundred rows (900 parameters) is where that stops mattering. PostgreSQL takes
    /// arrays, so it takes many more.
    /// </summary>
    internal const int SqliteChunk = 100;
    private const int PostgresChunk = 10_000;

    public async Task<int> AppendAsync(IReadOnlyCollection<UsageEvent> events, CancellationToken cancellationToken = default)
    {
        if (events.Count == 0)
        {
            return 0;
        }

        Validate(events);
        // One copy of each id, the first: the same statement must not meet an id twice.
        var distinct = events.DistinctBy(e => e.SourceEventId, StringComparer.Ordinal).OrderBy(e => e.SourceEventId, StringComparer.Ordinal).ToList();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return database.IsPostgres
                    ? await AppendPostgresAsync(distinct, cancellationToken)
                    : await AppendSqliteAsync(distinct, cancellationToken);
            }
            catch (PostgresException conflict) when (conflict.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure && attempt < 5)
            {
                // The transaction rolled back as a whole, so trying again cannot count anything twice.
            }
        }
    }

    /// <summary>The ledger's total per tenant and meter for the hours [start, end): what the ledger says was used.</summary>
    public async Task<IReadOnlyDictionary<(string TenantId, string Meter), long>> TotalsAsync(long startHour, long endHour, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT tenant_id, meter, SUM(quantity) FROM usage_ledger WHERE hour_start >= @start AND hour_start < @end GROUP BY tenant_id, meter";
        Database.AddParameter(command, "start", startHour);
        Database.AddParameter(command, "end", endHour);
        var totals = new Dictionary<(string, string), long>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            totals[(reader.GetString(0), reader.GetString(1))] = reader.GetInt64(2);
        }

        return totals;
    }

    private async Task<int> AppendPostgresAsync(List<UsageEvent> events, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var added = 0;
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        foreach (var chunk in events.Chunk(PostgresChunk))
        {
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            // Rows in id order and hours in key order: two batches touching the same rows lock them in the same order.
            command.CommandText = """
                WITH input AS (
                    SELECT * FROM unnest(@ids::text[], @tenants::text[], @instances::text[], @meters::text[], @quantities::bigint[],
                                         @occurred::bigint[], @hours::bigint[], @corrects::text[])
                        AS t(source_event_id, tenant_id, instance_id, meter, quantity, occurred_at, hour_start, corrects)),
                inserted AS (
                    INSERT INTO usage_ledger (source_event_id, tenant_id, instance_id, meter, quantity, occurred_at, hour_start, corrects, recorded_at)
                    SELECT source_event_id, tenant_id, instance_id, meter, quantity, occurred_at, hour_start, corrects, @now FROM input
                    ON CONFLICT (source_event_id) DO NOTHING
                    RETURNING tenant_id, meter, hour_start, quantity),
                rolled AS (
                    INSERT INTO usage_hourly (tenant_id, meter, hour_start, total)
                    SELECT tenant_id, meter, hour_start, SUM(quantity) FROM inserted
                    GROUP BY tenant_id, meter, hour_start ORDER BY tenant_id, meter, hour_start
                    ON CONFLICT (tenant_id, meter, hour_start) DO UPDATE SET total = usage_hourly.total + EXCLUDED.total
                    RETURNING 1)
                SELECT (SELECT COUNT(*) FROM inserted), (SELECT COUNT(*) FROM rolled)
                """;
            BindArrays(command, chunk);
            Database.AddParameter(command, "now", now);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            added += checked((int)reader.GetInt64(0));
        }

        await transaction.CommitAsync(cancellationToken);
        return added;
    }

    private async Task<int> AppendSqliteAsync(List<UsageEvent> events, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var hourly = new Dictionary<(string Tenant, string Meter, long Hour), long>();
        var added = 0;
        foreach (var chunk in events.Chunk(SqliteChunk))
        {
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText =
                "INSERT INTO usage_ledger (source_event_id, tenant_id, instance_id, meter, quantity, occurred_at, hour_start, corrects, recorded_at) VALUES "
                + BindValues(command, chunk)
                + " ON CONFLICT (source_event_id) DO NOTHING RETURNING tenant_id, meter, hour_start, quantity";
            Database.AddParameter(command, "now", now);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var key = (reader.GetString(0), reader.GetString(1), reader.GetInt64(2));
                hourly[key] = hourly.GetValueOrDefault(key) + reader.GetInt64(3);
                added++;
            }
        }

        await using (var rollup = connection.CreateCommand())
        {
            rollup.Transaction = transaction;
            rollup.CommandText = """
                INSERT INTO usage_hourly (tenant_id, meter, hour_start, total) VALUES (@tenant, @meter, @hour, @total)
                ON CONFLICT (tenant_id, meter, hour_start) DO UPDATE SET total = total + excluded.total
                """;
            var tenant = Parameter(rollup, "tenant");
            var meter = Parameter(rollup, "meter");
            var hour = Parameter(rollup, "hour");
            var total = Parameter(rollup, "total");
            foreach (var ((t, m, h), sum) in hourly)
            {
                (tenant.Value, meter.Value, hour.Value, total.Value) = (t, m, h, sum);
                await rollup.ExecuteNonQueryAsync(cancellationToken);
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return added;
    }

    /// <summary>PostgreSQL: one array parameter per column (@ids … @corrects), for <c>unnest</c>.</summary>
    internal static void BindArrays(DbCommand command, UsageEvent[] chunk)
    {
        Database.AddParameter(command, "ids", chunk.Select(e => e.SourceEventId).ToArray());
        Database.AddParameter(command, "tenants", chunk.Select(e => e.TenantId).ToArray());
        Database.AddParameter(command, "instances", chunk.Select(e => e.InstanceId).ToArray());
        Database.AddParameter(command, "meters", chunk.Select(e => e.Meter).ToArray());
        Database.AddParameter(command, "quantities", chunk.Select(e => e.Quantity).ToArray());
        Database.AddParameter(command, "occurred", chunk.Select(e => e.OccurredAt.ToUnixTimeMilliseconds()).ToArray());
        Database.AddParameter(command, "hours", chunk.Select(e => UsageHours.HourStart(e.OccurredAt)).ToArray());
        Database.AddParameter(command, "corrects", chunk.Select(e => e.Corrects).ToArray());
    }

    /// <summary>SQLite: the multi-row VALUES list (with @now as recorded_at), its parameters bound to the command.</summary>
    internal static string BindValues(DbCommand command, UsageEvent[] chunk)
    {
        var sql = new StringBuilder();
        for (var i = 0; i < chunk.Length; i++)
        {
            var e = chunk[i];
            sql.Append(i == 0 ? "" : ",").Append(System.Globalization.CultureInfo.InvariantCulture, $"(@i{i},@t{i},@n{i},@m{i},@q{i},@o{i},@h{i},@c{i},@now)");
            // Named with their '@': an unprefixed name would be looked up once per possible prefix.
            Database.AddParameter(command, $"@i{i}", e.SourceEventId);
            Database.AddParameter(command, $"@t{i}", e.TenantId);
            Database.AddParameter(command, $"@n{i}", e.InstanceId);
            Database.AddParameter(command, $"@m{i}", e.Meter);
            Database.AddParameter(command, $"@q{i}", e.Quantity);
            Database.AddParameter(command, $"@o{i}", e.OccurredAt.ToUnixTimeMilliseconds());
            Database.AddParameter(command, $"@h{i}", UsageHours.HourStart(e.OccurredAt));
            Database.AddParameter(command, $"@c{i}", e.Corrects);
        }

        return sql.ToString();
    }

    private static DbParameter Parameter(DbCommand command, string name)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        command.Parameters.Add(parameter);
        return parameter;
    }

    /// <summary>
    /// The ledger refuses a whole batch with a bad event rather than keep part of it: the producer has a bug to fix,
    /// and its retry must not find half the batch already there. Tenant ids and meters end up in Stripe identifiers
    /// (<c>tenant:meter:hour:version</c>, at most 100 characters), so they are kept short and free of ':'.
    /// </summary>
    private static void Validate(IReadOnlyCollection<UsageEvent> events)
    {
        foreach (var e in events)
        {
            string? problem =
                string.IsNullOrWhiteSpace(e.SourceEventId) || e.SourceEventId.Length > 256 ? "a source event id of 1 to 256 characters is required"
                : !TenantIdPattern().IsMatch(e.TenantId ?? "") ? "the tenant id must be 1 to 40 letters, digits, '-' or '_'"
                : string.IsNullOrWhiteSpace(e.InstanceId) || e.InstanceId.Length > 64 ? "an instance id of 1 to 64 characters is required"
                : !MeterPattern().IsMatch(e.Meter ?? "") ? "the meter must be 1 to 40 lower-case letters, digits or '_', starting with a letter"
                : e.Quantity < 0 && e.Corrects is null ? "only a correction (Corrects set) may have a negative quantity"
                : e.Corrects is { Length: 0 or > 256 } ? "Corrects must name the source event id it compensates"
                : null;
            if (problem is not null)
            {
                throw new ArgumentException($"Usage event '{e.SourceEventId}' is not valid: {problem}.", nameof(events));
            }
        }
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,40}$")]
    private static partial Regex TenantIdPattern();

    [GeneratedRegex("^[a-z][a-z0-9_]{0,39}$")]
    internal static partial Regex MeterPattern();
}
