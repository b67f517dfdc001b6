using System.Data.Common;
using ControlPlane.Persistence;

namespace ControlPlane.Auditing;

/// <param name="Actor">Who acted (see <see cref="Security.Principals.Actor"/>), <c>system</c>, or <c>anonymous</c>.</param>
/// <param name="Action">What, as <c>resource.verb</c>, e.g. <c>instance.create</c>, <c>instance.credentials.read</c>.</param>
/// <param name="Outcome"><c>accepted</c>, <c>succeeded</c>, <c>rejected:&lt;problem type&gt;</c> or <c>failed:&lt;reason&gt;</c>.</param>
/// <param name="Details">Never a secret.</param>
public sealed record AuditEntry(string Actor, string? TenantId, string Action, string? Target, string Outcome, string? Details = null)
{
    /// <summary>The state before the change, as a JSON object, where a change has one (a plan, a size).</summary>
    public string? Before { get; init; }

    /// <summary>The state after the change, as a JSON object.</summary>
    public string? After { get; init; }

    public string? ClientAddress { get; init; }

    public string? UserAgent { get; init; }

    /// <summary>The trace id the request's problem+json answer carries (<c>traceId</c>).</summary>
    public string? RequestId { get; init; }
}

/// <summary>
/// The permanent, append-only record of every mutation, every read of a secret or an export, and every refused request.
/// Each row is chained to the one before it by a SHA-256 (<see cref="AuditChain"/>); appends are serialized across
/// every process sharing the database, so the chain has one order. A mutation writes an <c>intent</c> row before it
/// acts and an <c>outcome</c> row after, so a crash in between leaves an intent that reads "outcome unknown", never an
/// unrecorded change. In cluster mode it is one log in PostgreSQL for every silo.
/// </summary>
public sealed class AuditLog(Database database, TimeProvider clock)
{
    public const string Unknown = "unknown";
    internal const string ChainLock = "audit_events/chain";

    public static readonly Migration Migration = new(
        "0020-audit-events",
        """
        CREATE TABLE IF NOT EXISTS audit_events (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            occurred_at TEXT NOT NULL,
            actor       TEXT NOT NULL,
            tenant_id   TEXT NULL,
            action      TEXT NOT NULL,
            target      TEXT NULL,
            outcome     TEXT NOT NULL,
            details     TEXT NULL
        );
        CREATE INDEX IF NOT EXISTS audit_events_by_tenant ON audit_events (tenant_id, id);
        """,
        """
        CREATE TABLE IF NOT EXISTS audit_events (
            id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            occurred_at timestamptz NOT NULL,
            actor       text        NOT NULL,
            tenant_id   text        NULL,
            action      text        NOT NULL,
            target      text        NULL,
            outcome     text        NOT NULL,
            details     text        NULL
        );
        CREATE INDEX IF NOT EXISTS audit_events_by_tenant ON audit_events (tenant_id, id);
        """);

    /// <summary>
    /// The chain: each row's kind (event, intent, outcome), the intent an outcome completes, the request it came from,
    /// before/after, and its hashes; and the checkpoints retention leaves when it archives the start of the chain.
    /// </summary>
    public static readonly Migration ChainMigration = new(
        "0021-audit-chain",
        """
        ALTER TABLE audit_events ADD COLUMN kind TEXT NOT NULL DEFAULT 'event';
        ALTER TABLE audit_events ADD COLUMN intent_id INTEGER NULL;
        ALTER TABLE audit_events ADD COLUMN client_address TEXT NULL;
        ALTER TABLE audit_events ADD COLUMN user_agent TEXT NULL;
        ALTER TABLE audit_events ADD COLUMN request_id TEXT NULL;
        ALTER TABLE audit_events ADD COLUMN before_state TEXT NULL;
        ALTER TABLE audit_events ADD COLUMN after_state TEXT NULL;
        ALTER TABLE audit_events ADD COLUMN format_version INTEGER NULL;
        ALTER TABLE audit_events ADD COLUMN prev_hash TEXT NULL;
        ALTER TABLE audit_events ADD COLUMN hash TEXT NULL;
        CREATE INDEX IF NOT EXISTS audit_events_by_intent ON audit_events (intent_id);
        CREATE TABLE IF NOT EXISTS audit_checkpoints (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            last_id      INTEGER NOT NULL,
            last_hash    TEXT NOT NULL,
            archived_at  TEXT NOT NULL,
            archive_file TEXT NOT NULL
        );
        """,
        """
        ALTER TABLE audit_events
            ADD COLUMN IF NOT EXISTS kind           text   NOT NULL DEFAULT 'event',
            ADD COLUMN IF NOT EXISTS intent_id      bigint NULL,
            ADD COLUMN IF NOT EXISTS client_address text   NULL,
            ADD COLUMN IF NOT EXISTS user_agent     text   NULL,
            ADD COLUMN IF NOT EXISTS request_id     text   NULL,
            ADD COLUMN IF NOT EXISTS before_state   text   NULL,
            ADD COLUMN IF NOT EXISTS after_state    text   NULL,
            ADD COLUMN IF NOT EXISTS format_version int    NULL,
            ADD COLUMN IF NOT EXISTS prev_hash      text   NULL,
            ADD COLUMN IF NOT EXISTS hash           text   NULL;
        CREATE INDEX IF NOT EXISTS audit_events_by_intent ON audit_events (intent_id);
        CREATE TABLE IF NOT EXISTS audit_checkpoints (
            id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            last_id      bigint      NOT NULL,
            last_hash    text        NOT NULL,
            archived_at  timestamptz NOT NULL,
            archive_file text        NOT NULL
        );
        """);

    /// <summary>Finds a record by its request id, so a record written again after a crash (<see cref="RecordOnceAsync"/>) is written once.</summary>
    public static readonly Migration RequestIndexMigration = new(
        "0035-audit-events-by-request",
        "CREATE INDEX IF NOT EXISTS audit_events_by_request ON audit_events (request_id);",
        "CREATE INDEX IF NOT EXISTS audit_events_by_request ON audit_events (request_id);");

    public static IReadOnlyList<Migration> Migrations { get; } = [Migration, ChainMigration, RequestIndexMigration];

    /// <summary>Records something that happened at once and is complete (a refusal, a system action); answers its id.</summary>
    public Task<long> RecordAsync(AuditEntry entry, CancellationToken cancellationToken = default) =>
        AppendAsync(AuditRowKind.Event, intentId: null, entry, cancellationToken);

    /// <summary>
    /// Records <paramref name="entry"/> unless a record with its <see cref="AuditEntry.RequestId"/> is already in the log
    /// (checked under the chain's lock): for a writer that repeats itself after a crash. Answers the record's id.
    /// </summary>
    public Task<long> RecordOnceAsync(AuditEntry entry, CancellationToken cancellationToken = default) =>
        AppendAsync(AuditRowKind.Event, intentId: null, entry, cancellationToken, once: true);

    /// <summary>Records that a mutation (or a read of a secret) is about to happen; its outcome follows with <see cref="CompleteAsync"/>.</summary>
    public Task<long> BeginAsync(AuditEntry intent, CancellationToken cancellationToken = default) =>
        AppendAsync(AuditRowKind.Intent, intentId: null, intent with { Outcome = Unknown }, cancellationToken);

    /// <summary>Records how the intent <paramref name="intentId"/> ended.</summary>
    public Task<long> CompleteAsync(long intentId, AuditEntry outcome, CancellationToken cancellationToken = default) =>
        AppendAsync(AuditRowKind.Outcome, intentId, outcome, cancellationToken);

    /// <summary>The newest records first, for one tenant or (null) for the platform.</summary>
    public async Task<IReadOnlyList<AuditRecord>> ReadAsync(string? tenantId, int limit, CancellationToken cancellationToken = default) =>
        (await new AuditQueries(database).PageAsync(new AuditFilter { TenantId = tenantId }, new Api.PageRequest { Size = limit }, cancellationToken)).Items;

    private async Task<long> AppendAsync(AuditRowKind kind, long? intentId, AuditEntry entry, CancellationToken cancellationToken, bool once = false)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await database.LockAsync(transaction, ChainLock, cancellationToken);
        if (once)
        {
            await using var existing = connection.CreateCommand();
            existing.Transaction = transaction;
            existing.CommandText = "SELECT id FROM audit_events WHERE request_id = @request LIMIT 1";
            Database.AddParameter(existing, "request", entry.RequestId ?? throw new ArgumentException("A record written once needs a request id.", nameof(entry)));
            if (await existing.ExecuteScalarAsync(cancellationToken) is { } id and not DBNull)
            {
                return Convert.ToInt64(id, System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        var (headId, headHash) = await ReadHeadAsync(connection, transaction, cancellationToken);
        if (headHash is null)
        {
            (headId, headHash) = await SealUnchainedAsync(connection, transaction, cancellationToken);
        }

        // Read under the lock, so times never go backwards along the chain.
        var row = new AuditRow(
            headId + 1, AuditChain.Canonical(clock.GetUtcNow()), kind, intentId, entry, AuditChain.FormatVersion, headHash, "");
        row = row with { Hash = AuditChain.Hash(row) };
        await InsertAsync(connection, transaction, row, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return row.Id;
    }

    /// <summary>The chain's last link: the newest row, or the checkpoint retention left, or the genesis. A null hash: unchained rows.</summary>
    internal static async Task<(long Id, string? Hash)> ReadHeadAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1";
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            if (await reader.ReadAsync(cancellationToken))
            {
                return (reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetString(1));
            }
        }

        return await ReadCheckpointAsync(connection, transaction, cancellationToken) is { } checkpoint
            ? (checkpoint.LastId, checkpoint.LastHash)
            : (0, AuditChain.Genesis);
    }

    internal static async Task<AuditCheckpoint?> ReadCheckpointAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "SELECT last_id, last_hash, archived_at, archive_file FROM audit_checkpoints ORDER BY id DESC LIMIT 1";
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? new AuditCheckpoint(reader.GetInt64(0), reader.GetString(1), Database.ReadTimestamp(reader, 2), reader.GetString(3))
            : null;
    }

    /// <summary>
    /// Chains the rows written before the chain existed (or by an older version), oldest first, after the last chained
    /// one; answers the new head. Only the unchained tail is sealed: an unchained row inside the chain stays a break.
    /// </summary>
    private async Task<(long Id, string Hash)> SealUnchainedAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken)
    {
        await using var last = connection.CreateCommand();
        last.Transaction = transaction;
        last.CommandText = "SELECT id, hash FROM audit_events WHERE hash IS NOT NULL ORDER BY id DESC LIMIT 1";
        (long Id, string Hash)? chained = null;
        await using (var reader = await last.ExecuteReaderAsync(cancellationToken))
        {
            if (await reader.ReadAsync(cancellationToken))
            {
                chained = (reader.GetInt64(0), reader.GetString(1));
            }
        }

        var head = chained
            ?? (await ReadCheckpointAsync(connection, transaction, cancellationToken) is { } checkpoint ? (checkpoint.LastId, checkpoint.LastHash) : (0, AuditChain.Genesis));

        var unchained = await AuditRows.ReadAsync(connection, transaction, "WHERE id > @after ORDER BY id", cancellationToken, ("after", head.Id));
        foreach (var legacy in unchained)
        {
            var row = legacy with { OccurredAt = AuditChain.Canonical(legacy.OccurredAt), FormatVersion = AuditChain.FormatVersion, PrevHash = head.Hash };
            row = row with { Hash = AuditChain.Hash(row) };
            await using var seal = connection.CreateCommand();
            seal.Transaction = transaction;
            seal.CommandText = "UPDATE audit_events SET occurred_at = @at, format_version = @version, prev_hash = @prev, hash = @hash WHERE id = @id AND hash IS NULL";
            database.AddTimestamp(seal, "at", row.OccurredAt);
            Database.AddParameter(seal, "version", row.FormatVersion);
            Database.AddParameter(seal, "prev", row.PrevHash);
            Database.AddParameter(seal, "hash", row.Hash);
            Database.AddParameter(seal, "id", row.Id);
            await seal.ExecuteNonQueryAsync(cancellationToken);
            head = (row.Id, row.Hash);
        }

        return head;
    }

    private async Task InsertAsync(DbConnection connection, DbTransaction transaction, AuditRow row, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        // The id is the chain's position, chosen under the lock; PostgreSQL's identity column must be told so.
        command.CommandText = $"""
            INSERT INTO audit_events (id, occurred_at, kind, intent_id, actor, tenant_id, action, target, outcome, details,
                before_state, after_state, client_address, user_agent, request_id, format_version, prev_hash, hash)
            {(database.IsPostgres ? "OVERRIDING SYSTEM VALUE" : "")}
            VALUES (@id, @at, @kind, @intent, @actor, @tenant, @action, @target, @outcome, @details,
                @before, @after, @address, @agent, @request, @version, @prev, @hash);
            """;
        var entry = row.Entry;
        Database.AddParameter(command, "id", row.Id);
        database.AddTimestamp(command, "at", row.OccurredAt);
        Database.AddParameter(command, "kind", AuditRows.KindName(row.Kind));
        Database.AddParameter(command, "intent", row.IntentId);
        Database.AddParameter(command, "actor", entry.Actor);
        Database.AddParameter(command, "tenant", entry.TenantId);
        Database.AddParameter(command, "action", entry.Action);
        Database.AddParameter(command, "target", entry.Target);
        Database.AddParameter(command, "outcome", entry.Outcome);
        Database.AddParameter(command, "details", entry.Details);
        Database.AddParameter(command, "before", entry.Before);
        Database.AddParameter(command, "after", entry.After);
        Database.AddParameter(command, "address", entry.ClientAddress);
        Database.AddParameter(command, "agent", entry.UserAgent);
        Database.AddParameter(command, "request", entry.RequestId);
        Database.AddParameter(command, "version", row.FormatVersion);
        Database.AddParameter(command, "prev", row.PrevHash);
        Database.AddParameter(command, "hash", row.Hash);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}

/// <summary>Where retention cut the chain: the last archived record, its hash (the remaining chain's first link), and its file.</summary>
public sealed record AuditCheckpoint(long LastId, string LastHash, DateTimeOffset ArchivedAt, string ArchiveFile);
