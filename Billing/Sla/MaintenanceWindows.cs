using ControlPlane.Persistence;

namespace Billing.Sla;

/// <summary>
/// Maintenance announced by an SRE, for one instance or (no <see cref="InstanceId"/>) every instance of a tenant.
/// <see cref="MaintenanceKind.Planned"/> maintenance is announced ahead (<c>Billing:Sla:MaintenanceNotice</c>), within a
/// monthly cap, and a minute that overlaps it at all is not eligible for the SLA, whatever the probes saw.
/// <see cref="MaintenanceKind.Emergency"/> maintenance may start at once and is announced to customers, but its minutes
/// count against the SLA. A withdrawn window excuses nothing.
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
    public MaintenanceKind Kind { get; init; } = MaintenanceKind.Planned;
    public DateTimeOffset? WithdrawnAt { get; init; }
    public string? WithdrawnBy { get; init; }

    /// <summary>Its minutes are not eligible for the SLA: planned and not withdrawn.</summary>
    public bool Excuses => Kind == MaintenanceKind.Planned && WithdrawnAt is null;

    public TimeSpan Duration => EndsAt - StartsAt;

    /// <summary>Both windows could touch the same instance at the same time.</summary>
    public bool Overlaps(MaintenanceWindow other) =>
        StartsAt < other.EndsAt && other.StartsAt < EndsAt && (InstanceId is null || other.InstanceId is null || InstanceId == other.InstanceId);
}

public enum MaintenanceKind
{
    Planned,
    Emergency,
}

public sealed class MaintenanceWindows(Database database)
{
    /// <summary>Announcing is for the future: a window may start at most this long before it is announced (request latency, clock skew).</summary>
    public static readonly TimeSpan AnnouncementTolerance = TimeSpan.FromMinutes(1);

    public static readonly Migration Migration = new(
        "sla-0002-maintenance-windows",
        Sqlite: Schema,
        Postgres: Schema);

    public static readonly Migration PolicyMigration = new(
        "sla-0004-maintenance-policy",
        Sqlite: PolicySchema,
        Postgres: PolicySchema);

    private const string PolicySchema = """
        ALTER TABLE sla_maintenance_windows ADD COLUMN kind TEXT NOT NULL DEFAULT 'planned';
        ALTER TABLE sla_maintenance_windows ADD COLUMN withdrawn_at BIGINT NULL;
        ALTER TABLE sla_maintenance_windows ADD COLUMN withdrawn_by TEXT NULL;
        """;

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

    private const string Columns = "id, tenant_id, instance_id, starts_at, ends_at, reason, announced_by, announced_at, kind, withdrawn_at, withdrawn_by";

    /// <summary>Why a window cannot be announced at <paramref name="now"/>, per field; empty when it can.</summary>
    public static Dictionary<string, string[]> Validate(
        DateTimeOffset? startsAt, DateTimeOffset? endsAt, string? reason, MaintenanceKind kind, DateTimeOffset now, SlaOptions options)
    {
        var errors = new Dictionary<string, string[]>();
        var longest = options.MaxMaintenanceWindow;
        if (startsAt is null)
        {
            errors["startsAt"] = ["startsAt is required (ISO 8601 with an offset, e.g. 2026-12-01T02:00:00Z)."];
        }
        else if (startsAt < now - AnnouncementTolerance)
        {
            errors["startsAt"] = ["startsAt is in the past: maintenance is announced ahead of time, and past downtime cannot be excused."];
        }
        else if (kind == MaintenanceKind.Planned && startsAt < now + options.MaintenanceNotice - AnnouncementTolerance)
        {
            errors["startsAt"] = [$"Planned maintenance is announced at least {options.MaintenanceNotice.TotalHours:0.#} hours ahead (from {now + options.MaintenanceNotice:O}). " +
                "For work that cannot wait, announce it with kind \"emergency\": it may start at once, and its minutes count against the SLA."];
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

    /// <summary>
    /// Why <paramref name="window"/> would break the policy among the tenant's <paramref name="existing"/> windows (its
    /// month's, withdrawn ones included): an overlap (answered 409), or the monthly cap of planned maintenance; null when it would not.
    /// </summary>
    public static (bool Conflict, string Detail)? PolicyRefusal(MaintenanceWindow window, IReadOnlyCollection<MaintenanceWindow> existing, TimeSpan monthlyCap)
    {
        var live = existing.Where(other => other.WithdrawnAt is null).ToList();
        if (live.FirstOrDefault(window.Overlaps) is { } overlapping)
        {
            return (true, $"It overlaps maintenance window '{overlapping.Id}' ({overlapping.InstanceId ?? "all instances"}, {overlapping.StartsAt:O} to {overlapping.EndsAt:O}). " +
                "Withdraw that one first, or choose another time.");
        }

        if (window.Kind != MaintenanceKind.Planned)
        {
            return null;
        }

        // The instances it touches: one, or (a tenant-wide window) each that has windows of its own, and the tenant's shared ones.
        var month = SlaMonth.Of(window.StartsAt);
        var planned = live.Where(other => other.Kind == MaintenanceKind.Planned && SlaMonth.Of(other.StartsAt) == month).ToList();
        var instances = window.InstanceId is { } one ? [one] : planned.Select(other => other.InstanceId).OfType<string>().Distinct().Append(null).ToList();
        foreach (var instance in instances)
        {
            var total = planned.Where(other => other.InstanceId is null || other.InstanceId == instance).Aggregate(window.Duration, (sum, other) => sum + other.Duration);
            if (total > monthlyCap)
            {
                return (false, $"It would bring planned maintenance of {instance ?? "the tenant's instances"} in {month} to {total.TotalHours:0.##} hours, " +
                    $"above the monthly cap of {monthlyCap.TotalHours:0.##} hours (Billing:Sla:MaxMaintenancePerMonth).");
            }
        }

        return null;
    }

    public async Task AnnounceAsync(MaintenanceWindow window, CancellationToken cancellationToken = default) =>
        await database.ExecuteAsync(
            $"INSERT INTO sla_maintenance_windows ({Columns}) VALUES (@id, @tenant, @instance, @starts, @ends, @reason, @by, @at, @kind, NULL, NULL)",
            cancellationToken,
            ("id", window.Id),
            ("tenant", window.TenantId),
            ("instance", window.InstanceId),
            ("starts", window.StartsAt.ToUnixTimeMilliseconds()),
            ("ends", window.EndsAt.ToUnixTimeMilliseconds()),
            ("reason", window.Reason),
            ("by", window.AnnouncedBy),
            ("at", window.AnnouncedAt.ToUnixTimeMilliseconds()),
            ("kind", KindName(window.Kind)));

    /// <summary>Withdraws the window (once: a second withdrawal changes nothing); returns it as stored, or null when the tenant has no such window.</summary>
    public async Task<MaintenanceWindow?> WithdrawAsync(string tenantId, string windowId, string by, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        await database.ExecuteAsync(
            "UPDATE sla_maintenance_windows SET withdrawn_at = @at, withdrawn_by = @by WHERE tenant_id = @tenant AND id = @id AND withdrawn_at IS NULL",
            cancellationToken,
            ("at", at.ToUnixTimeMilliseconds()),
            ("by", by),
            ("tenant", tenantId),
            ("id", windowId));
        var stored = await database.QueryAsync(
            $"SELECT {Columns} FROM sla_maintenance_windows WHERE tenant_id = @tenant AND id = @id", Read, cancellationToken, ("tenant", tenantId), ("id", windowId));
        return stored.SingleOrDefault();
    }

    /// <summary>
    /// The tenant's windows overlapping [from, to), withdrawn ones included: its own and, when <paramref name="instanceId"/>
    /// is given, only that instance's. Only those that <see cref="MaintenanceWindow.Excuses"/> change the SLA.
    /// </summary>
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
        Kind = reader.GetString(8) == "emergency" ? MaintenanceKind.Emergency : MaintenanceKind.Planned,
        WithdrawnAt = reader.IsDBNull(9) ? null : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(9)),
        WithdrawnBy = reader.IsDBNull(10) ? null : reader.GetString(10),
    };

    private static string KindName(MaintenanceKind kind) => kind == MaintenanceKind.Emergency ? "emergency" : "planned";
}
