using ControlPlane.Persistence;

namespace Billing.Ledger;

/// <summary>
/// The ledger's tables: the append-only rows, keyed by their source event id (the dedupe; byte-order collation on
/// PostgreSQL, as ids are compared, never sorted for people), and their per-hour totals that the Stripe outbox reads.
/// </summary>
public static class LedgerMigrations
{
    public static IReadOnlyList<Migration> All { get; } =
    [
        new(
            "0100-ledger",
            """
            CREATE TABLE usage_ledger (
                source_event_id TEXT NOT NULL PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                instance_id TEXT NOT NULL,
                meter TEXT NOT NULL,
                quantity INTEGER NOT NULL,
                occurred_at INTEGER NOT NULL,
                hour_start INTEGER NOT NULL,
                corrects TEXT NULL,
                recorded_at INTEGER NOT NULL);
            CREATE INDEX ix_usage_ledger_period ON usage_ledger (hour_start, tenant_id, meter);
            CREATE TABLE usage_hourly (
                tenant_id TEXT NOT NULL,
                meter TEXT NOT NULL,
                hour_start INTEGER NOT NULL,
                total INTEGER NOT NULL,
                enqueued_total INTEGER NOT NULL DEFAULT 0,
                versions INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (tenant_id, meter, hour_start)) WITHOUT ROWID;
            CREATE INDEX ix_usage_hourly_unsent ON usage_hourly (hour_start) WHERE total <> enqueued_total;
            """,
            """
            CREATE TABLE usage_ledger (
                source_event_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                instance_id TEXT NOT NULL,
                meter TEXT NOT NULL,
                quantity BIGINT NOT NULL,
                occurred_at BIGINT NOT NULL,
                hour_start BIGINT NOT NULL,
                corrects TEXT NULL,
                recorded_at BIGINT NOT NULL);
            CREATE INDEX ix_usage_ledger_period ON usage_ledger (hour_start, tenant_id, meter);
            CREATE TABLE usage_hourly (
                tenant_id TEXT NOT NULL,
                meter TEXT NOT NULL,
                hour_start BIGINT NOT NULL,
                total BIGINT NOT NULL,
                enqueued_total BIGINT NOT NULL DEFAULT 0,
                versions INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (tenant_id, meter, hour_start));
            CREATE INDEX ix_usage_hourly_unsent ON usage_hourly (hour_start) WHERE total <> enqueued_total;
            """),
    ];
}
