using ControlPlane.Persistence;

namespace Billing.Stripe;

/// <summary>
/// Customers and meters as Stripe knows them, the meter-event outbox (one row per hourly version, sent at least once,
/// counted by Stripe once), and the finance adjustments for usage Stripe can no longer take.
/// </summary>
public static class StripeMigrations
{
    public static IReadOnlyList<Migration> All { get; } =
    [
        new(
            "0200-stripe",
            """
            CREATE TABLE stripe_customers (
                tenant_id TEXT PRIMARY KEY,
                tenant_name TEXT NULL,
                customer_id TEXT NULL UNIQUE,
                requested_at INTEGER NOT NULL,
                created_at INTEGER NULL);
            CREATE TABLE stripe_meters (
                meter TEXT PRIMARY KEY,
                event_name TEXT NOT NULL,
                stripe_meter_id TEXT NOT NULL);
            CREATE TABLE meter_outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                identifier TEXT NOT NULL UNIQUE,
                tenant_id TEXT NOT NULL,
                meter TEXT NOT NULL,
                hour_start INTEGER NOT NULL,
                version INTEGER NOT NULL,
                value INTEGER NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at INTEGER NOT NULL,
                first_attempt_at INTEGER NULL,
                ambiguous INTEGER NOT NULL DEFAULT 0,
                claimed_until INTEGER NULL,
                last_error TEXT NULL,
                created_at INTEGER NOT NULL,
                completed_at INTEGER NULL);
            CREATE INDEX ix_meter_outbox_pending ON meter_outbox (tenant_id, meter, id) WHERE status = 'pending';
            CREATE INDEX ix_meter_outbox_period ON meter_outbox (hour_start, tenant_id, meter);
            CREATE TABLE finance_adjustments (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                tenant_id TEXT NOT NULL,
                meter TEXT NOT NULL,
                hour_start INTEGER NOT NULL,
                quantity INTEGER NOT NULL,
                reason TEXT NOT NULL,
                identifier TEXT NOT NULL UNIQUE,
                created_at INTEGER NOT NULL);
            CREATE INDEX ix_finance_adjustments_period ON finance_adjustments (hour_start, tenant_id, meter);
            """,
            """
            CREATE TABLE stripe_customers (
                tenant_id TEXT PRIMARY KEY,
                tenant_name TEXT NULL,
                customer_id TEXT NULL UNIQUE,
                requested_at BIGINT NOT NULL,
                created_at BIGINT NULL);
            CREATE TABLE stripe_meters (
                meter TEXT PRIMARY KEY,
                event_name TEXT NOT NULL,
                stripe_meter_id TEXT NOT NULL);
            CREATE TABLE meter_outbox (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                identifier TEXT NOT NULL UNIQUE,
                tenant_id TEXT NOT NULL,
                meter TEXT NOT NULL,
                hour_start BIGINT NOT NULL,
                version INTEGER NOT NULL,
                value BIGINT NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at BIGINT NOT NULL,
                first_attempt_at BIGINT NULL,
                ambiguous INTEGER NOT NULL DEFAULT 0,
                claimed_until BIGINT NULL,
                last_error TEXT NULL,
                created_at BIGINT NOT NULL,
                completed_at BIGINT NULL);
            CREATE INDEX ix_meter_outbox_pending ON meter_outbox (tenant_id, meter, id) WHERE status = 'pending';
            CREATE INDEX ix_meter_outbox_period ON meter_outbox (hour_start, tenant_id, meter);
            CREATE TABLE finance_adjustments (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                meter TEXT NOT NULL,
                hour_start BIGINT NOT NULL,
                quantity BIGINT NOT NULL,
                reason TEXT NOT NULL,
                identifier TEXT NOT NULL UNIQUE,
                created_at BIGINT NOT NULL);
            CREATE INDEX ix_finance_adjustments_period ON finance_adjustments (hour_start, tenant_id, meter);
            """),
        // When a row was last sent: the summary check waits for Stripe's aggregation to pass it.
        Migration.Portable(
            "0210-stripe-outbox-last-attempt",
            """
            ALTER TABLE meter_outbox ADD COLUMN last_attempt_at BIGINT NULL;
            """),
        // Which idempotency key a customer is created under: a new one only after Stripe kept a failure under the last
        // and lists show no customer from it.
        Migration.Portable(
            "0220-stripe-customer-generation",
            """
            ALTER TABLE stripe_customers ADD COLUMN create_generation INTEGER NOT NULL DEFAULT 1;
            ALTER TABLE stripe_customers ADD COLUMN create_started_at BIGINT NULL;
            """),
    ];
}
