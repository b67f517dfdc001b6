using ControlPlane.Persistence;

namespace ControlPlane.Auditing;

/// <param name="Actor">Who acted (see <see cref="Security.Principals.Actor"/>).</param>
/// <param name="Action">What, as <c>resource.verb</c>, e.g. <c>instance.create</c>, <c>instance.credentials.read</c>.</param>
/// <param name="Outcome"><c>accepted</c>, <c>succeeded</c>, or <c>rejected:&lt;problem type&gt;</c>.</param>
/// <param name="Details">Never a secret.</param>
public sealed record AuditEntry(string Actor, string? TenantId, string Action, string? Target, string Outcome, string? Details = null);

/// <summary>
/// An append-only record of every mutation and every credential read, attributable to an API key. In cluster mode it
/// is one log in PostgreSQL for every silo, whichever silo served the request.
/// </summary>
public sealed class AuditLog(Database database, TimeProvider clock)
{
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

    public async Task RecordAsync(AuditEntry entry, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO audit_events (occurred_at, actor, tenant_id, action, target, outcome, details)
            VALUES (@at, @actor, @tenant, @action, @target, @outcome, @details);
            """;
        database.AddTimestamp(command, "at", clock.GetUtcNow());
        Database.AddParameter(command, "actor", entry.Actor);
        Database.AddParameter(command, "tenant", entry.TenantId);
        Database.AddParameter(command, "action", entry.Action);
        Database.AddParameter(command, "target", entry.Target);
        Database.AddParameter(command, "outcome", entry.Outcome);
        Database.AddParameter(command, "details", entry.Details);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The newest entries first, for one tenant or (null) for the platform.</summary>
    public async Task<IReadOnlyList<AuditRecord>> ReadAsync(string? tenantId, int limit, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = tenantId is null
            ? "SELECT id, occurred_at, actor, tenant_id, action, target, outcome, details FROM audit_events ORDER BY id DESC LIMIT @limit;"
            : "SELECT id, occurred_at, actor, tenant_id, action, target, outcome, details FROM audit_events WHERE tenant_id = @tenant ORDER BY id DESC LIMIT @limit;";
        Database.AddParameter(command, "tenant", tenantId);
        Database.AddParameter(command, "limit", limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var records = new List<AuditRecord>();
        while (await reader.ReadAsync(cancellationToken))
        {
            records.Add(new AuditRecord(
                reader.GetInt64(0),
                Database.ReadTimestamp(reader, 1),
                reader.GetString(2),
                reader.IsDBNull(3) ? null : reader.GetString(3),
                reader.GetString(4),
                reader.IsDBNull(5) ? null : reader.GetString(5),
                reader.GetString(6),
                reader.IsDBNull(7) ? null : reader.GetString(7)));
        }

        return records;
    }
}

public sealed record AuditRecord(long Id, DateTimeOffset OccurredAt, string Actor, string? TenantId, string Action, string? Target, string Outcome, string? Details);
