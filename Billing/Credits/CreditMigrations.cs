using ControlPlane.Persistence;

namespace Billing.Credits;

/// <summary>Each SLA credit from computed to applied, keyed by the assessment it comes from.</summary>
public static class CreditMigrations
{
    public static IReadOnlyList<Migration> All { get; } =
    [
        new(
            "0300-sla-credits",
            """
            CREATE TABLE sla_credits (
                assessment_id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                instance_id TEXT NOT NULL,
                month TEXT NOT NULL,
                credit_minor_units INTEGER NOT NULL,
                currency TEXT NOT NULL,
                status TEXT NOT NULL,
                stripe_transaction_id TEXT NULL,
                computed_at INTEGER NOT NULL,
                applied_at INTEGER NULL);
            CREATE INDEX ix_sla_credits_month ON sla_credits (month, tenant_id);
            """,
            """
            CREATE TABLE sla_credits (
                assessment_id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                instance_id TEXT NOT NULL,
                month TEXT NOT NULL,
                credit_minor_units BIGINT NOT NULL,
                currency TEXT NOT NULL,
                status TEXT NOT NULL,
                stripe_transaction_id TEXT NULL,
                computed_at BIGINT NOT NULL,
                applied_at BIGINT NULL);
            CREATE INDEX ix_sla_credits_month ON sla_credits (month, tenant_id);
            """),
    ];
}
