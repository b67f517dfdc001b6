using ControlPlane.Persistence;

namespace Billing.Usage;

/// <summary>
/// Every instance's lifecycle changes, append-only, keyed by instance and sequence number so a change recorded twice
/// (a retried notice) is kept once, with its first time.
/// </summary>
public sealed class LifecycleLog(Database database)
{
    public static readonly Migration Migration = new(
        "usage-0001-instance-lifecycle",
        Sqlite: Schema,
        Postgres: Schema);

    private const string Schema = """
        CREATE TABLE billing_instance_lifecycle (
            instance_id TEXT NOT NULL,
            seq         BIGINT NOT NULL,
            tenant_id   TEXT NOT NULL,
            at_ms       BIGINT NOT NULL,
            state       TEXT NOT NULL,
            size        TEXT NOT NULL,
            PRIMARY KEY (instance_id, seq)
        );
        CREATE INDEX billing_instance_lifecycle_by_tenant ON billing_instance_lifecycle (tenant_id, instance_id);
        """;

    public Task AppendAsync(string instanceId, string tenantId, long sequence, LifecycleChange change, CancellationToken cancellationToken = default) =>
        database.ExecuteAsync(
            """
            INSERT INTO billing_instance_lifecycle (instance_id, seq, tenant_id, at_ms, state, size)
            VALUES (@instance, @seq, @tenant, @at, @state, @size)
            ON CONFLICT (instance_id, seq) DO NOTHING
            """,
            cancellationToken,
            ("instance", instanceId),
            ("seq", sequence),
            ("tenant", tenantId),
            ("at", change.At.ToUnixTimeMilliseconds()),
            ("state", change.State.ToString()),
            ("size", change.Size));

    /// <summary>The instance's timeline, or null when nothing was ever recorded for it.</summary>
    public async Task<InstanceTimeline?> ReadAsync(string instanceId, CancellationToken cancellationToken = default)
    {
        var rows = await database.QueryAsync(
            "SELECT tenant_id, at_ms, state, size FROM billing_instance_lifecycle WHERE instance_id = @instance ORDER BY seq",
            reader => (Tenant: reader.GetString(0), Change: new LifecycleChange(
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(1)),
                Enum.Parse<MeteredState>(reader.GetString(2)),
                reader.GetString(3))),
            cancellationToken,
            ("instance", instanceId));
        return rows.Count == 0 ? null : new InstanceTimeline(instanceId, rows[0].Tenant, [.. rows.Select(row => row.Change)]);
    }

    /// <summary>The timelines of instances that existed at some time in [from, to), of one tenant or (null) of all.</summary>
    public async Task<IReadOnlyList<InstanceTimeline>> ReadExistingAsync(DateTimeOffset from, DateTimeOffset to, string? tenantId, CancellationToken cancellationToken = default)
    {
        var ids = await database.QueryAsync(
            tenantId is null
                ? "SELECT DISTINCT instance_id FROM billing_instance_lifecycle WHERE at_ms < @to ORDER BY instance_id"
                : "SELECT DISTINCT instance_id FROM billing_instance_lifecycle WHERE at_ms < @to AND tenant_id = @tenant ORDER BY instance_id",
            reader => reader.GetString(0),
            cancellationToken,
            ("to", to.ToUnixTimeMilliseconds()),
            ("tenant", tenantId ?? ""));
        var timelines = new List<InstanceTimeline>(ids.Count);
        foreach (var id in ids)
        {
            if (await ReadAsync(id, cancellationToken) is { } timeline && !(timeline.DeletedAt < from))
            {
                timelines.Add(timeline);
            }
        }

        return timelines;
    }
}
