using System.Globalization;
using ControlPlane.Persistence;

namespace Billing.Reconciliation;

/// <summary>Stripe's event summary of one tenant's meter for a month, as the sync last read it.</summary>
/// <param name="AcknowledgedAtSync">What Stripe had acknowledged to us for the month when the summary was read.</param>
/// <param name="LastAcknowledgedAt">When the last of those acknowledgements came (Unix seconds): Stripe may count it up to its lag later.</param>
public sealed record SummarySnapshot(string TenantId, string Meter, string Period, string CustomerId, long StripeTotal, long AcknowledgedAtSync, long? LastAcknowledgedAt, DateTimeOffset SyncedAt);

/// <summary>A finalized (or draft) invoice as the sync last read it: its period and quantity per metered price.</summary>
public sealed record InvoiceSnapshot(string InvoiceId, string CustomerId, long PeriodStart, long PeriodEnd, string Status, IReadOnlyDictionary<string, long> QuantityByPrice, DateTimeOffset SyncedAt);

/// <summary>A customer balance transaction as the sync last read it; SLA credits carry their assessment id.</summary>
public sealed record CreditSnapshot(string TransactionId, string CustomerId, string? AssessmentId, long Amount, string Currency, DateTimeOffset SyncedAt);

/// <summary>
/// What the sync keeps of Stripe in our database, so reconciliation reads only the database: summaries per tenant,
/// meter and month, invoices with their lines, balance transactions, and when each was read.
/// </summary>
public sealed class StripeSnapshots(Database database)
{
    public static readonly Migration Migration = Migration.Portable(
        "0400-stripe-snapshots",
        """
        CREATE TABLE stripe_summary_snapshots (
            tenant_id TEXT NOT NULL,
            meter TEXT NOT NULL,
            period TEXT NOT NULL,
            customer_id TEXT NOT NULL,
            stripe_total BIGINT NOT NULL,
            acknowledged_at_sync BIGINT NOT NULL,
            last_acknowledged_at BIGINT NULL,
            synced_at BIGINT NOT NULL,
            PRIMARY KEY (tenant_id, meter, period));
        CREATE TABLE stripe_invoice_snapshots (
            invoice_id TEXT PRIMARY KEY,
            customer_id TEXT NOT NULL,
            period_start BIGINT NOT NULL,
            period_end BIGINT NOT NULL,
            status TEXT NOT NULL,
            created BIGINT NOT NULL,
            lines TEXT NOT NULL,
            synced_at BIGINT NOT NULL);
        CREATE INDEX ix_stripe_invoice_snapshots_customer ON stripe_invoice_snapshots (customer_id, period_start);
        CREATE TABLE stripe_credit_snapshots (
            transaction_id TEXT PRIMARY KEY,
            customer_id TEXT NOT NULL,
            assessment_id TEXT NULL,
            amount BIGINT NOT NULL,
            currency TEXT NOT NULL,
            synced_at BIGINT NOT NULL);
        CREATE INDEX ix_stripe_credit_snapshots_assessment ON stripe_credit_snapshots (assessment_id);
        CREATE TABLE stripe_sync_marks (
            name TEXT PRIMARY KEY,
            value BIGINT NOT NULL);
        CREATE TABLE billing_leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at BIGINT NOT NULL);
        """);

    public static string Period(DateOnly month) => month.ToString("yyyy-MM", CultureInfo.InvariantCulture);

    public Task SaveSummaryAsync(SummarySnapshot snapshot, CancellationToken cancellationToken) =>
        database.ExecuteAsync(
            """
            INSERT INTO stripe_summary_snapshots (tenant_id, meter, period, customer_id, stripe_total, acknowledged_at_sync, last_acknowledged_at, synced_at)
            VALUES (@tenant, @meter, @period, @customer, @total, @ack, @last, @at)
            ON CONFLICT (tenant_id, meter, period) DO UPDATE SET customer_id = excluded.customer_id, stripe_total = excluded.stripe_total,
                acknowledged_at_sync = excluded.acknowledged_at_sync, last_acknowledged_at = excluded.last_acknowledged_at, synced_at = excluded.synced_at
            """,
            cancellationToken,
            ("tenant", snapshot.TenantId),
            ("meter", snapshot.Meter),
            ("period", snapshot.Period),
            ("customer", snapshot.CustomerId),
            ("total", snapshot.StripeTotal),
            ("ack", snapshot.AcknowledgedAtSync),
            ("last", snapshot.LastAcknowledgedAt),
            ("at", snapshot.SyncedAt.ToUnixTimeSeconds()));

    public async Task<Dictionary<(string TenantId, string Meter), SummarySnapshot>> SummariesAsync(DateOnly month, CancellationToken cancellationToken) =>
        (await database.QueryAsync(
            "SELECT tenant_id, meter, period, customer_id, stripe_total, acknowledged_at_sync, last_acknowledged_at, synced_at FROM stripe_summary_snapshots WHERE period = @period",
            reader => new SummarySnapshot(
                reader.GetString(0),
                reader.GetString(1),
                reader.GetString(2),
                reader.GetString(3),
                reader.GetInt64(4),
                reader.GetInt64(5),
                reader.IsDBNull(6) ? null : reader.GetInt64(6),
                DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(7))),
            cancellationToken,
            ("period", Period(month)))).ToDictionary(s => (s.TenantId, s.Meter));

    public Task SaveInvoiceAsync(InvoiceSnapshot invoice, long created, CancellationToken cancellationToken) =>
        database.ExecuteAsync(
            """
            INSERT INTO stripe_invoice_snapshots (invoice_id, customer_id, period_start, period_end, status, created, lines, synced_at)
            VALUES (@id, @customer, @start, @end, @status, @created, @lines, @at)
            ON CONFLICT (invoice_id) DO UPDATE SET status = excluded.status, lines = excluded.lines, synced_at = excluded.synced_at
            """,
            cancellationToken,
            ("id", invoice.InvoiceId),
            ("customer", invoice.CustomerId),
            ("start", invoice.PeriodStart),
            ("end", invoice.PeriodEnd),
            ("status", invoice.Status),
            ("created", created),
            ("lines", System.Text.Json.JsonSerializer.Serialize(invoice.QuantityByPrice)),
            ("at", invoice.SyncedAt.ToUnixTimeSeconds()));

    /// <summary>Invoices whose period lies within [start, end), by customer.</summary>
    public async Task<ILookup<string, InvoiceSnapshot>> InvoicesAsync(long start, long end, CancellationToken cancellationToken) =>
        (await database.QueryAsync(
            "SELECT invoice_id, customer_id, period_start, period_end, status, lines, synced_at FROM stripe_invoice_snapshots WHERE period_start >= @start AND period_end <= @end",
            reader => new InvoiceSnapshot(
                reader.GetString(0),
                reader.GetString(1),
                reader.GetInt64(2),
                reader.GetInt64(3),
                reader.GetString(4),
                System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, long>>(reader.GetString(5)) ?? [],
                DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(6))),
            cancellationToken,
            ("start", start),
            ("end", end))).ToLookup(i => i.CustomerId, StringComparer.Ordinal);

    public Task SaveCreditAsync(CreditSnapshot credit, CancellationToken cancellationToken) =>
        database.ExecuteAsync(
            """
            INSERT INTO stripe_credit_snapshots (transaction_id, customer_id, assessment_id, amount, currency, synced_at)
            VALUES (@id, @customer, @assessment, @amount, @currency, @at)
            ON CONFLICT (transaction_id) DO UPDATE SET synced_at = excluded.synced_at
            """,
            cancellationToken,
            ("id", credit.TransactionId),
            ("customer", credit.CustomerId),
            ("assessment", credit.AssessmentId),
            ("amount", credit.Amount),
            ("currency", credit.Currency),
            ("at", credit.SyncedAt.ToUnixTimeSeconds()));

    /// <summary>The SLA credits Stripe was seen to hold, by assessment id.</summary>
    public async Task<Dictionary<string, CreditSnapshot>> CreditsByAssessmentAsync(CancellationToken cancellationToken) =>
        (await database.QueryAsync(
            "SELECT transaction_id, customer_id, assessment_id, amount, currency, synced_at FROM stripe_credit_snapshots WHERE assessment_id IS NOT NULL",
            reader => new CreditSnapshot(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt64(3), reader.GetString(4), DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(5))),
            cancellationToken)).DistinctBy(c => c.AssessmentId).ToDictionary(c => c.AssessmentId!, StringComparer.Ordinal);

    public async Task<long?> MarkAsync(string name, CancellationToken cancellationToken) =>
        (await database.QueryAsync("SELECT value FROM stripe_sync_marks WHERE name = @name", reader => (long?)reader.GetInt64(0), cancellationToken, ("name", name))).SingleOrDefault();

    public Task SetMarkAsync(string name, long value, CancellationToken cancellationToken) =>
        database.ExecuteAsync(
            "INSERT INTO stripe_sync_marks (name, value) VALUES (@name, @value) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            cancellationToken,
            ("name", name),
            ("value", value));

    /// <summary>
    /// Takes or renews a lease (one holder at a time across hosts; an expired one is free), answering whether this
    /// <paramref name="holder"/> has it until <paramref name="until"/>.
    /// </summary>
    public async Task<bool> TryLeaseAsync(string name, string holder, DateTimeOffset now, DateTimeOffset until, CancellationToken cancellationToken) =>
        await database.ExecuteAsync(
            """
            INSERT INTO billing_leases (name, holder, expires_at) VALUES (@name, @holder, @until)
            ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
            WHERE billing_leases.holder = excluded.holder OR billing_leases.expires_at <= @now
            """,
            cancellationToken,
            ("name", name),
            ("holder", holder),
            ("until", until.ToUnixTimeSeconds()),
            ("now", now.ToUnixTimeSeconds())) == 1;
}
