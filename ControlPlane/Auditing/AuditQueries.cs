using System.Data.Common;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using ControlPlane.Api;
using ControlPlane.Persistence;

namespace ControlPlane.Auditing;

/// <summary>
/// One audit record as readers see it: an intent joined with its outcome (<c>unknown</c> when none came: the process
/// ended between the two), or a record complete in itself. <see cref="Before"/> and <see cref="After"/> are JSON objects.
/// </summary>
public sealed record AuditRecord
{
    public required long Id { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
    public DateTimeOffset? CompletedAt { get; init; }
    public required string Actor { get; init; }
    public string? TenantId { get; init; }
    public required string Action { get; init; }
    public string? Target { get; init; }
    public required string Outcome { get; init; }
    public string? Details { get; init; }
    public JsonElement? Before { get; init; }
    public JsonElement? After { get; init; }
    public string? ClientAddress { get; init; }
    public string? UserAgent { get; init; }
    public string? RequestId { get; init; }
}

/// <summary>
/// Which records: every field optional. <see cref="Actor"/> matches the whole actor or its key (<c>apikey:key_…</c>);
/// <see cref="Outcome"/> the whole outcome or its class (<c>rejected</c> matches every <c>rejected:…</c>).
/// <see cref="Since"/> is inclusive, <see cref="Until"/> exclusive.
/// </summary>
public sealed record AuditFilter
{
    public string? TenantId { get; init; }
    public string? Action { get; init; }
    public string? Actor { get; init; }
    public string? Target { get; init; }
    public string? Outcome { get; init; }
    public DateTimeOffset? Since { get; init; }
    public DateTimeOffset? Until { get; init; }
}

/// <summary>Reads the audit log as <see cref="AuditRecord"/>s: filtered pages, newest first, and whole exports, oldest first.</summary>
public sealed class AuditQueries(Database database)
{
    private const string Records = """
        SELECT i.id AS id, i.occurred_at AS occurred_at, o.occurred_at AS completed_at, i.actor AS actor, i.tenant_id AS tenant_id,
               i.action AS action, COALESCE(o.target, i.target) AS target,
               CASE WHEN i.kind = 'intent' THEN COALESCE(o.outcome, 'unknown') ELSE i.outcome END AS outcome,
               COALESCE(o.details, i.details) AS details, i.before_state AS before_state, COALESCE(o.after_state, i.after_state) AS after_state,
               i.client_address AS client_address, i.user_agent AS user_agent, i.request_id AS request_id
        FROM audit_events i LEFT JOIN audit_events o ON o.intent_id = i.id AND o.kind = 'outcome'
        WHERE i.kind <> 'outcome'
        """;

    public async Task<Page<AuditRecord>> PageAsync(AuditFilter filter, PageRequest page, CancellationToken cancellationToken = default)
    {
        var items = new List<AuditRecord>();
        await foreach (var record in ReadAsync(filter, newestFirst: true, page.After is null ? null : long.Parse(page.After, CultureInfo.InvariantCulture), page.Size + 1, cancellationToken))
        {
            items.Add(record);
        }

        return Paging.Fetched(items, page.Size, record => Paging.Key(record.Id));
    }

    /// <summary>Every matching record, oldest first, read as it is sent (an export never holds the whole log in memory).</summary>
    public IAsyncEnumerable<AuditRecord> StreamAsync(AuditFilter filter, CancellationToken cancellationToken = default) =>
        ReadAsync(filter, newestFirst: false, after: null, limit: null, cancellationToken);

    private async IAsyncEnumerable<AuditRecord> ReadAsync(
        AuditFilter filter, bool newestFirst, long? after, int? limit, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        var sql = new StringBuilder($"SELECT * FROM ({Records}) r WHERE 1 = 1");
        void Where(string condition, params (string Name, object Value)[] parameters)
        {
            sql.Append(" AND ").Append(condition);
            foreach (var (name, value) in parameters)
            {
                Database.AddParameter(command, name, value);
            }
        }

        if (filter.TenantId is { } tenant)
        {
            Where("r.tenant_id = @tenant", ("tenant", tenant));
        }

        if (filter.Action is { } action)
        {
            Where("r.action = @action", ("action", action));
        }

        if (filter.Target is { } target)
        {
            Where("r.target = @target", ("target", target));
        }

        if (filter.Actor is { } actor)
        {
            Where("(r.actor = @actor OR substr(r.actor, 1, @actorLength) = @actorKey)", ("actor", actor), ("actorKey", actor + " ("), ("actorLength", actor.Length + 2));
        }

        if (filter.Outcome is { } outcome)
        {
            Where("(r.outcome = @outcome OR substr(r.outcome, 1, @outcomeLength) = @outcomeClass)", ("outcome", outcome), ("outcomeClass", outcome + ":"), ("outcomeLength", outcome.Length + 1));
        }

        if (filter.Since is { } since)
        {
            Where("r.occurred_at >= @since");
            database.AddTimestamp(command, "since", since.ToUniversalTime());
        }

        if (filter.Until is { } until)
        {
            Where("r.occurred_at < @until");
            database.AddTimestamp(command, "until", until.ToUniversalTime());
        }

        if (after is { } position)
        {
            Where(newestFirst ? "r.id < @after" : "r.id > @after", ("after", position));
        }

        sql.Append(newestFirst ? " ORDER BY r.id DESC" : " ORDER BY r.id");
        if (limit is { } count)
        {
            sql.Append(" LIMIT @limit");
            Database.AddParameter(command, "limit", count);
        }

        command.CommandText = sql.ToString();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            yield return Read(reader);
        }
    }

    private static AuditRecord Read(DbDataReader reader) => new()
    {
        Id = reader.GetInt64(0),
        OccurredAt = Database.ReadTimestamp(reader, 1),
        CompletedAt = reader.IsDBNull(2) ? null : Database.ReadTimestamp(reader, 2),
        Actor = reader.GetString(3),
        TenantId = Text(reader, 4),
        Action = reader.GetString(5),
        Target = Text(reader, 6),
        Outcome = reader.GetString(7),
        Details = Text(reader, 8),
        Before = Json(reader, 9),
        After = Json(reader, 10),
        ClientAddress = Text(reader, 11),
        UserAgent = Text(reader, 12),
        RequestId = Text(reader, 13),
    };

    private static string? Text(DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    private static JsonElement? Json(DbDataReader reader, int ordinal)
    {
        if (reader.IsDBNull(ordinal))
        {
            return null;
        }

        using var document = JsonDocument.Parse(reader.GetString(ordinal));
        return document.RootElement.Clone();
    }
}
