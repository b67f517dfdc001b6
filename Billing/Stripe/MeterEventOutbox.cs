using System.Data.Common;
using System.Globalization;
using Billing.Ledger;
using ControlPlane.Persistence;
using Microsoft.Extensions.Options;

namespace Billing.Stripe;

/// <summary>One version of one tenant's hourly total of one meter, waiting to be (or already) sent to Stripe.</summary>
public sealed record OutboxRow(
    long Id,
    string Identifier,
    string TenantId,
    string Meter,
    long HourStart,
    int Version,
    long Value,
    int Attempts,
    long? FirstAttemptAt,
    long? LastAttemptAt = null,
    bool Ambiguous = false);

public static class OutboxStatus
{
    public const string Pending = "pending";
    /// <summary>Stripe answered 200 for it, or said it already holds its identifier.</summary>
    public const string Acknowledged = "acknowledged";
    /// <summary>Stripe refused it for good (a 4xx other than rate limiting): visible to finance.</summary>
    public const string Rejected = "rejected";
    /// <summary>No definite answer after every attempt, or Stripe's count disagrees: visible to finance.</summary>
    public const string Dead = "dead";
    /// <summary>Not delivered before Stripe's 35-day window closed: a finance adjustment row holds its quantity.</summary>
    public const string Expired = "expired";
}

/// <summary>
/// The transactional outbox between the ledger and Stripe.
/// <para>
/// Stripe sums a meter's events, so each row carries a delta: version n of an hour is the ledger's hourly total now
/// minus what versions 1..n-1 already carried. Whatever mix of versions Stripe has counted once each, its sum for the
/// hour equals the ledger's total; late usage or a compensating row only adds a version (negative when usage went
/// down). The hour's <c>enqueued_total</c> and <c>versions</c> (the aggregation watermark) change in the same
/// transaction as the outbox insert, so a crash leaves either both or neither.
/// </para>
/// </summary>
public sealed class MeterEventOutbox(Database database, IOptions<StripeBillingOptions> options, TimeProvider clock)
{
    /// <summary>Stripe accepts meter events whose timestamp is at most this old.</summary>
    public static readonly TimeSpan StripeWindow = TimeSpan.FromDays(35);

    private const int AggregationBatch = 1000;
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, SemaphoreSlim> s_sqliteLanes = new(StringComparer.Ordinal);
    private const string Columns = "id, identifier, tenant_id, meter, hour_start, version, value, attempts, first_attempt_at, last_attempt_at, ambiguous";

    /// <summary>
    /// Turns every closed hour whose total changed since it was last enqueued into the next version in the outbox, or,
    /// when the hour is too old for Stripe, into a finance adjustment. Answers how many hours it moved.
    /// </summary>
    public async Task<int> EnqueueClosedHoursAsync(CancellationToken cancellationToken = default)
    {
        var now = clock.GetUtcNow();
        var lastClosedHour = UsageHours.HourStart(now - options.Value.HourClosedAfter) - UsageHours.SecondsPerHour;
        var oldestSendable = OldestSendableHour(now);
        var moved = 0;
        while (true)
        {
            await using var connection = await database.OpenAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var changed = new List<(string Tenant, string Meter, long Hour, long Total, long Enqueued, int Versions)>();
            await using (var select = Command(connection, transaction, $"""
                SELECT tenant_id, meter, hour_start, total, enqueued_total, versions FROM usage_hourly
                WHERE total <> enqueued_total AND hour_start <= @closed
                ORDER BY hour_start, tenant_id, meter LIMIT {AggregationBatch}
                {(database.IsPostgres ? "FOR UPDATE SKIP LOCKED" : "")}
                """))
            {
                Database.AddParameter(select, "closed", lastClosedHour);
                await using var reader = await select.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    changed.Add((reader.GetString(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt32(5)));
                }
            }

            if (changed.Count == 0)
            {
                return moved;
            }

            var nowSeconds = now.ToUnixTimeSeconds();
            foreach (var hour in changed)
            {
                var version = hour.Versions + 1;
                var identifier = Identifier(hour.Tenant, hour.Meter, hour.Hour, version);
                var delta = hour.Total - hour.Enqueued;
                await using (var insert = hour.Hour < oldestSendable
                    ? Command(connection, transaction, """
                        INSERT INTO finance_adjustments (tenant_id, meter, hour_start, quantity, reason, identifier, created_at)
                        VALUES (@tenant, @meter, @hour, @value, 'too_old_for_stripe', @identifier, @now)
                        """)
                    : Command(connection, transaction, """
                        INSERT INTO meter_outbox (identifier, tenant_id, meter, hour_start, version, value, status, next_attempt_at, created_at)
                        VALUES (@identifier, @tenant, @meter, @hour, @version, @value, 'pending', @now, @now)
                        """))
                {
                    Database.AddParameter(insert, "identifier", identifier);
                    Database.AddParameter(insert, "tenant", hour.Tenant);
                    Database.AddParameter(insert, "meter", hour.Meter);
                    Database.AddParameter(insert, "hour", hour.Hour);
                    Database.AddParameter(insert, "version", version);
                    Database.AddParameter(insert, "value", delta);
                    Database.AddParameter(insert, "now", nowSeconds);
                    await insert.ExecuteNonQueryAsync(cancellationToken);
                }

                await using var watermark = Command(connection, transaction, """
                    UPDATE usage_hourly SET enqueued_total = enqueued_total + @delta, versions = @version
                    WHERE tenant_id = @tenant AND meter = @meter AND hour_start = @hour AND versions = @previous
                    """);
                Database.AddParameter(watermark, "delta", delta);
                Database.AddParameter(watermark, "version", version);
                Database.AddParameter(watermark, "tenant", hour.Tenant);
                Database.AddParameter(watermark, "meter", hour.Meter);
                Database.AddParameter(watermark, "hour", hour.Hour);
                Database.AddParameter(watermark, "previous", hour.Versions);
                if (await watermark.ExecuteNonQueryAsync(cancellationToken) != 1)
                {
                    throw new InvalidOperationException($"The hourly total of {hour.Tenant}/{hour.Meter} at {hour.Hour} was enqueued concurrently.");
                }
            }

            await transaction.CommitAsync(cancellationToken);
            moved += changed.Count;
        }
    }

    /// <summary><c>tenant:meter:yyyyMMddHH:vN</c>: at most 40+1+40+1+10+1+6 = 99 characters (the ledger bounds both names).</summary>
    public static string Identifier(string tenantId, string meter, long hourStart, int version)
    {
        var identifier = string.Create(CultureInfo.InvariantCulture, $"{tenantId}:{meter}:{UsageHours.ToTime(hourStart):yyyyMMddHH}:v{version}");
        return identifier.Length <= 100 ? identifier : throw new InvalidOperationException($"Meter event identifier '{identifier}' is longer than Stripe's 100 characters.");
    }

    /// <summary>The oldest hour still safely inside Stripe's window at <paramref name="now"/>.</summary>
    public long OldestSendableHour(DateTimeOffset now) =>
        UsageHours.Floor((now - StripeWindow + options.Value.WindowSafetyMargin).ToUnixTimeSeconds()) + UsageHours.SecondsPerHour;

    /// <summary>The first pending row of each customer+meter lane that is due and not owned by another dispatcher.</summary>
    public async Task<IReadOnlyList<OutboxRow>> DueLaneHeadsAsync(int limit, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = Command(connection, null, $"""
            SELECT {string.Join(", ", Columns.Split(", ").Select(c => "o." + c))} FROM meter_outbox o
            JOIN (SELECT MIN(id) AS id FROM meter_outbox WHERE status = 'pending' GROUP BY tenant_id, meter) h ON o.id = h.id
            WHERE o.next_attempt_at <= @now AND (o.claimed_until IS NULL OR o.claimed_until <= @now)
            ORDER BY o.next_attempt_at, o.id LIMIT @limit
            """);
        Database.AddParameter(command, "now", clock.GetUtcNow().ToUnixTimeSeconds());
        Database.AddParameter(command, "limit", limit);
        return await ReadRowsAsync(command, cancellationToken);
    }

    /// <summary>The lane's next pending row, when it is due.</summary>
    public async Task<OutboxRow?> NextInLaneAsync(string tenantId, string meter, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = Command(connection, null, $"""
            SELECT {Columns} FROM meter_outbox WHERE tenant_id = @tenant AND meter = @meter AND status = 'pending'
            ORDER BY id LIMIT 1
            """);
        Database.AddParameter(command, "tenant", tenantId);
        Database.AddParameter(command, "meter", meter);
        var rows = await ReadRowsAsync(command, cancellationToken);
        return rows.Count == 1 ? rows[0] : null;
    }

    /// <summary>
    /// Takes the row for one attempt: answers the row as claimed, or null when it is not due or another dispatcher
    /// holds it. The attempt is counted and the row marked ambiguous before the request, so a crash mid-request leaves
    /// a row that may have been counted, to be checked against Stripe's summary once Stripe's dedupe may have lapsed.
    /// The answer's <see cref="OutboxRow.Ambiguous"/> is still what earlier attempts left.
    /// </summary>
    public async Task<OutboxRow?> ClaimAsync(OutboxRow row, CancellationToken cancellationToken = default)
    {
        var now = clock.GetUtcNow().ToUnixTimeSeconds();
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = Command(connection, null, """
            UPDATE meter_outbox SET claimed_until = @until, attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, @now), last_attempt_at = @now,
                ambiguous = 1
            WHERE id = @id AND status = 'pending' AND next_attempt_at <= @now AND (claimed_until IS NULL OR claimed_until <= @now)
            """);
        Database.AddParameter(command, "until", now + (long)options.Value.ClaimDuration.TotalSeconds);
        Database.AddParameter(command, "now", now);
        Database.AddParameter(command, "id", row.Id);
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1
            ? row with { Attempts = row.Attempts + 1, FirstAttemptAt = row.FirstAttemptAt ?? now, LastAttemptAt = now }
            : null;
    }

    /// <summary>
    /// Gives back a claim whose request never reached Stripe (the circuit was open, Stripe answered 429, the summary
    /// said to wait): the attempt is not counted, and the row is due again at <paramref name="at"/>.
    /// </summary>
    public Task ReleaseAsync(OutboxRow unclaimed, DateTimeOffset at, string error) =>
        ExecuteAsync(
            """
            UPDATE meter_outbox SET attempts = @attempts, first_attempt_at = @first, last_attempt_at = @last, ambiguous = @ambiguous,
                claimed_until = NULL, next_attempt_at = @at, last_error = @error
            WHERE id = @id AND status = 'pending'
            """,
            CancellationToken.None,
            ("attempts", unclaimed.Attempts),
            ("ambiguous", unclaimed.Ambiguous ? 1 : 0),
            ("first", unclaimed.FirstAttemptAt),
            ("last", unclaimed.LastAttemptAt),
            ("at", at.ToUnixTimeSeconds()),
            ("error", error),
            ("id", unclaimed.Id));

    /// <summary>
    /// Holds a lane for one request, across every host sharing the database, for as long as the request is in flight
    /// (a PostgreSQL session lock, released if the host dies; embedded, the one process's lock), so no two hosts ever
    /// send a lane at once whatever their clocks say about claims. Null when another host holds it.
    /// </summary>
    public async Task<IAsyncDisposable?> TryLockLaneAsync(string tenantId, string meter, CancellationToken cancellationToken = default)
    {
        var lane = $"meter-lane:{tenantId}:{meter}";
        if (!database.IsPostgres)
        {
            var gate = s_sqliteLanes.GetOrAdd(database.FilePath + "|" + lane, _ => new SemaphoreSlim(1, 1));
            return await gate.WaitAsync(0, cancellationToken) ? new Releaser(() => { gate.Release(); return ValueTask.CompletedTask; }) : null;
        }

        var connection = await database.OpenAsync(cancellationToken);
        try
        {
            await using var take = Command(connection, null, "SELECT pg_try_advisory_lock(hashtext(@lane))");
            Database.AddParameter(take, "lane", lane);
            if (await take.ExecuteScalarAsync(cancellationToken) is true)
            {
                return new Releaser(async () =>
                {
                    await using (var release = Command(connection, null, "SELECT pg_advisory_unlock(hashtext(@lane))"))
                    {
                        Database.AddParameter(release, "lane", lane);
                        await release.ExecuteScalarAsync(CancellationToken.None);
                    }

                    await connection.DisposeAsync();
                });
            }
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        await connection.DisposeAsync();
        return null;
    }

    private sealed class Releaser(Func<ValueTask> release) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => release();
    }

    public Task CompleteAsync(long id, string status, string? error, CancellationToken cancellationToken = default) =>
        ExecuteAsync(
            "UPDATE meter_outbox SET status = @status, completed_at = @now, claimed_until = NULL, last_error = @error WHERE id = @id AND status = 'pending'",
            cancellationToken,
            ("status", status),
            ("now", clock.GetUtcNow().ToUnixTimeSeconds()),
            ("error", error),
            ("id", id));

    /// <summary>Ends a claim whose attempt counts; <paramref name="ambiguous"/> is whether any attempt so far may have been counted.</summary>
    public Task RescheduleAsync(long id, DateTimeOffset at, string error, bool ambiguous, CancellationToken cancellationToken = default) =>
        ExecuteAsync(
            "UPDATE meter_outbox SET next_attempt_at = @at, claimed_until = NULL, last_error = @error, ambiguous = @ambiguous WHERE id = @id AND status = 'pending'",
            cancellationToken,
            ("at", at.ToUnixTimeSeconds()),
            ("error", error),
            ("ambiguous", ambiguous ? 1 : 0),
            ("id", id));

    /// <summary>Stripe's window closed before the row was delivered: its quantity moves to a finance adjustment, atomically.</summary>
    public async Task ExpireAsync(OutboxRow row, CancellationToken cancellationToken = default)
    {
        var now = clock.GetUtcNow().ToUnixTimeSeconds();
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var expire = Command(connection, transaction, "UPDATE meter_outbox SET status = 'expired', completed_at = @now, claimed_until = NULL WHERE id = @id AND status = 'pending'"))
        {
            Database.AddParameter(expire, "now", now);
            Database.AddParameter(expire, "id", row.Id);
            if (await expire.ExecuteNonQueryAsync(cancellationToken) != 1)
            {
                return;
            }
        }

        await using (var adjust = Command(connection, transaction, """
            INSERT INTO finance_adjustments (tenant_id, meter, hour_start, quantity, reason, identifier, created_at)
            VALUES (@tenant, @meter, @hour, @value, 'expired_before_delivery', @identifier, @now)
            """))
        {
            Database.AddParameter(adjust, "tenant", row.TenantId);
            Database.AddParameter(adjust, "meter", row.Meter);
            Database.AddParameter(adjust, "hour", row.HourStart);
            Database.AddParameter(adjust, "value", row.Value);
            Database.AddParameter(adjust, "identifier", row.Identifier);
            Database.AddParameter(adjust, "now", now);
            await adjust.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>What Stripe acknowledged for an hour across all its versions: the expected event summary before a resend.</summary>
    public async Task<long> AcknowledgedForHourAsync(string tenantId, string meter, long hourStart, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = Command(connection, null, "SELECT COALESCE(SUM(value), 0) FROM meter_outbox WHERE tenant_id = @tenant AND meter = @meter AND hour_start = @hour AND status = 'acknowledged'");
        Database.AddParameter(command, "tenant", tenantId);
        Database.AddParameter(command, "meter", meter);
        Database.AddParameter(command, "hour", hourStart);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
    }

    /// <summary>Rows still waiting to be sent (or retried): zero once the pipeline has caught up.</summary>
    public async Task<long> PendingCountAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = Command(connection, null, "SELECT COUNT(*) FROM meter_outbox WHERE status = 'pending'");
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
    }

    private async Task ExecuteAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = Command(connection, null, sql);
        foreach (var (name, value) in parameters)
        {
            Database.AddParameter(command, name, value);
        }

        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<IReadOnlyList<OutboxRow>> ReadRowsAsync(DbCommand command, CancellationToken cancellationToken)
    {
        var rows = new List<OutboxRow>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new OutboxRow(
                reader.GetInt64(0),
                reader.GetString(1),
                reader.GetString(2),
                reader.GetString(3),
                reader.GetInt64(4),
                reader.GetInt32(5),
                reader.GetInt64(6),
                reader.GetInt32(7),
                reader.IsDBNull(8) ? null : reader.GetInt64(8),
                reader.IsDBNull(9) ? null : reader.GetInt64(9),
                reader.GetInt32(10) != 0));
        }

        return rows;
    }

    internal static DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return command;
    }
}
