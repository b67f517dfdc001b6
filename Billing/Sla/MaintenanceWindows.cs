using ControlPlane.Persistence;

namespace Billing.Sla;

/// <summary>
/// Maintenance announced by an SRE ahead of time, for one instance or (no <see cref="InstanceId"/>) every instance of a
/// tenant. A minute that overlaps a window at all is not eligible for the SLA, whatever the probes saw.
/// </summary>
public sealed record MaintenanceWindow
{
    public required string Id { get; init; }
    public required string TenantId { get; init; }
    public string? InstanceId { get; init; }
    public required DateTimeOffset StartsAt { get; init; }
    public required DateTimeOffset EndsAt { get; init; }
    public required string Reason { get; init; }
    public required string AnnouncedBy { get; init; }
    public required DateTimeOffset AnnouncedAt { get; init; }
}

public sealed class MaintenanceWindows(Database database)
{
    /// <summary>Announcing is for the future: a window may start at most this long before it is announced (request latency, clock skew).</summary>
    public static readonly TimeSpan AnnouncementTolerance = TimeSpan.FromMinutes(1);

    public static readonly Migration Migration = new(
        "sla-0002-maintenance-windows",
        Sqlite: Schema,
        Postgres: Schema);

    private const string Schema = """
        CREATE TABLE sla_maintenance_windows (
            id           TEXT PRIMARY KEY,
            tenant_id    TEXT NOT NULL,
            instance_id  TEXT NULL,
            starts_at    BIGINT NOT NULL,
            ends_at      BIGINT NOT NULL,
            reason       TEXT NOT NULL,
            announced_by TEXT NOT NULL,
            announced_at BIGINT NOT NULL
        );
        CREATE INDEX sla_maintenance_windows_by_tenant ON sla_maintenance_windows (tenant_id, starts_at);
        """;

    private const string Columns = "id, tenant_id, instance_id, starts_at, ends_at, reason, announced_by, announced_at";

    /// <summary>Why a window cannot be announced at <paramref name="now"/>, per field; empty when it can.</summary>
    public static Dictionary<string, string[]> Validate(DateTimeOffset? startsAt, DateTimeOffset? endsAt, string? reason, DateTimeOffset now, TimeSpan longest)
    {
        var errors = new Dictionary<string, string[]>();
        if (startsAt is null)
        {
            errors["startsAt"] = ["startsAt is required (ISO 8601 with an offset, e.g. 2026-12-01T02:00:00Z)."];
        }
        else if (startsAt < now - AnnouncementTolerance)
        {
            errors["startsAt"] = ["startsAt is in the past: maintenance is announced ahead of time, and past downtime cannot be excused."];
        }

        if (endsAt is null)
        {
            errors["endsAt"] = ["endsAt is required."];
        }
        else if (startsAt is not null && endsAt <= startsAt)
        {
            errors["endsAt"] = ["endsAt must be after startsAt."];
        }
        else if (startsAt is not null && endsAt - startsAt > longest)
        {
            errors["endsAt"] = [$"A window lasts at most {longest.TotalHours:0.#} hours; announce several for longer work."];
        }

        if (string.IsNullOrWhiteSpace(reason))
        {
            errors["reason"] = ["reason is required: customers read it."];
        }
        else if (reason.Length > 500 || reason.Any(char.IsControl))
        {
            errors["reason"] = ["reason must be at most 500 characters of printable text."];
        }

        return errors;
    }

    public async Task AnnounceAsync(MaintenanceWindow window, CancellationToken cancellationToken = default) =>
        await database.ExecuteAsync(
            $"INSERT INTO sla_maintenance_windows ({Columns}) VALUES (@id, @tenant, @instance, @starts, @ends, @reason, @by, @at)",
            cancellationToken,
            ("id", window.Id),
            ("tenant", window.TenantId),
            ("instance", window.InstanceId),
            ("starts", window.StartsAt.ToUnixTimeMilliseconds()),
            ("ends", window.EndsAt.ToUnixTimeMilliseconds()),
            ("reason", window.Reason),
            ("by", window.AnnouncedBy),
            ("at", window.AnnouncedAt.ToUnixTimeMilliseconds()));

    /// <summary>The tenant's windows overlapping [from, to): its own and, when <paramref name="instanceId"/> is given, only that instance's.</summary>
    public Task<List<MaintenanceWindow>> ListAsync(string tenantId, string? instanceId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken = default) =>
        database.QueryAsync(
            instanceId is null
                ? $"SELECT {Columns} FROM sla_maintenance_windows WHERE tenant_id = @tenant AND starts_at < @to AND ends_at > @from ORDER BY starts_at, id"
                : $"SELECT {Columns} FROM sla_maintenance_windows WHERE tenant_id = @tenant AND (instance_id IS NULL OR instance_id = @instance) AND starts_at < @to AND ends_at > @from ORDER BY starts_at, id",
            Read,
            cancellationToken,
            ("tenant", tenantId),
            ("instance", instanceId ?? ""),
            ("from", from.ToUnixTimeMilliseconds()),
            ("to", to.ToUnixTimeMilliseconds()));

    private static MaintenanceWindow Read(System.Data.Common.DbDataReader reader) => new()
    {
        Id = reader.GetString(0),
        TenantId = reader.GetString(1),
        InstanceId = reader.IsDBNull(2) ? null : reader.GetString(2),
        StartsAt = DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(3)),
        EndsAt = DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(4)),
        Reason = reader.GetString(5),
        AnnouncedBy = reader.GetString(6),
        AnnouncedAt = DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(7)),
    };
}
