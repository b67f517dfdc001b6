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
public sealed class AuditLog(ControlPlaneDatabase database, TimeProvider clock)
{
    public async Task RecordAsync(AuditEntry entry, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO audit_events (occurred_at, actor, tenant_id, action, target, outcome, details)
            VALUES (@at, @actor, @tenant, @action, @target, @outcome, @details);
            """;
        database.AddTimestamp(command, "at", clock.GetUtcNow());
        ControlPlaneDatabase.AddParameter(command, "actor", entry.Actor);
        ControlPlaneDatabase.AddParameter(command, "tenant", entry.TenantId);
        ControlPlaneDatabase.AddParameter(command, "action", entry.Action);
        ControlPlaneDatabase.AddParameter(command, "target", entry.Target);
        ControlPlaneDatabase.AddParameter(command, "outcome", entry.Outcome);
        ControlPlaneDatabase.AddParameter(command, "details", entry.Details);
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
        ControlPlaneDatabase.AddParameter(command, "tenant", tenantId);
        ControlPlaneDatabase.AddParameter(command, "limit", limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var records = new List<AuditRecord>();
        while (await reader.ReadAsync(cancellationToken))
        {
            records.Add(new AuditRecord(
                reader.GetInt64(0),
                ControlPlaneDatabase.ReadTimestamp(reader, 1),
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
