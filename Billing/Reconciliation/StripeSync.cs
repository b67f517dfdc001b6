using Billing.Ledger;
using Billing.Stripe;
using ControlPlane.Persistence;
using Microsoft.Extensions.Options;
using Stripe;

namespace Billing.Reconciliation;

/// <summary>What one sync did: Stripe requests made and figures stored.</summary>
public sealed record StripeSyncResult(int Summaries, int Invoices, int Credits, DateTimeOffset FinishedAt);

/// <summary>
/// Keeps what finance reconciles against of Stripe in the database, incrementally, within its own request budget
/// (<see cref="StripeSyncOptions.RequestsPerSecond"/>, on top of the host's pace, so dispatch keeps the rest of
/// Stripe's limit): a month's event summary of a tenant's meter is read again only when what Stripe acknowledged to us
/// changed since, when the last read was too early for Stripe's aggregation lag, or when it is older than
/// <see cref="StripeSyncOptions.MaxAge"/>; invoices are listed from the newest one seen (less an overlap); balance
/// transactions only of customers with an applied credit Stripe was not yet seen to hold.
/// </summary>
public sealed class StripeSync(
    Database database,
    StripeSnapshots snapshots,
    StripeCustomers customers,
    StripeMeters meters,
    StripeGateway stripe,
    IOptions<StripeBillingOptions> options,
    TimeProvider clock)
{
    private const string InvoicesMark = "invoices.created";

    /// <summary>The sync's own pace: every request it makes waits its turn here, then on the host's.</summary>
    public StripeRequestPacer Budget { get; } = new(options.Value.Sync.RequestsPerSecond, options.Value.MaxInProcessRetryAfter);

    /// <summary>Everything due, for every tenant.</summary>
    public async Task<StripeSyncResult> SyncOnceAsync(CancellationToken cancellationToken = default)
    {
        var summaries = await SyncSummariesAsync(tenantId: null, cancellationToken);
        var invoices = await SyncInvoicesAsync(customerId: null, cancellationToken);
        var credits = await SyncCreditsAsync(tenantId: null, cancellationToken);
        return new StripeSyncResult(summaries, invoices, credits, clock.GetUtcNow());
    }

    /// <summary>Everything of one tenant, due or not (an SRE's request): its summaries, invoices and balance transactions.</summary>
    public async Task<StripeSyncResult> SyncTenantAsync(string tenantId, CancellationToken cancellationToken = default)
    {
        var summaries = await SyncSummariesAsync(tenantId, cancellationToken);
        var customerId = await customers.FindAsync(tenantId, cancellationToken);
        var invoices = customerId is null ? 0 : await SyncInvoicesAsync(customerId, cancellationToken);
        var credits = await SyncCreditsAsync(tenantId, cancellationToken);
        return new StripeSyncResult(summaries, invoices, credits, clock.GetUtcNow());
    }

    private IEnumerable<DateOnly> RecentMonths(DateTimeOffset now)
    {
        var current = new DateOnly(now.Year, now.Month, 1);
        return Enumerable.Range(0, options.Value.Sync.Months).Select(back => current.AddMonths(-back));
    }

    private async Task<int> SyncSummariesAsync(string? tenantId, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var customerIds = await customers.AllAsync(cancellationToken);
        var meterIds = await meters.AllAsync(cancellationToken);
        var read = 0;
        foreach (var month in RecentMonths(clock.GetUtcNow()))
        {
            var (start, end) = UsageHours.Month(month);
            var existing = await snapshots.SummariesAsync(month, cancellationToken);
            var now = clock.GetUtcNow();
            var due = (await AcknowledgedAsync(start, end, tenantId, cancellationToken))
                .Where(a => customerIds.ContainsKey(a.TenantId) && meterIds.ContainsKey(a.Meter))
                .Select(a => (Figure: a, Priority: tenantId is not null ? 0 : Priority(a, existing.GetValueOrDefault((a.TenantId, a.Meter)), now)))
                .Where(d => d.Priority is not null)
                .OrderBy(d => d.Priority).ThenBy(d => d.Figure.TenantId, StringComparer.Ordinal).ThenBy(d => d.Figure.Meter, StringComparer.Ordinal);
            foreach (var (figure, _) in due)
            {
                var customerId = customerIds[figure.TenantId];
                var total = await stripe.EventSummaryAsync(meterIds[figure.Meter], customerId, start, end, cancellationToken, Budget);
                await snapshots.SaveSummaryAsync(
                    new SummarySnapshot(figure.TenantId, figure.Meter, StripeSnapshots.Period(month), customerId, total, figure.Acknowledged, figure.LastAcknowledgedAt, clock.GetUtcNow()),
                    cancellationToken);
                read++;
            }
        }

        return read;

        int? Priority(AcknowledgedFigure figure, SummarySnapshot? last, DateTimeOffset now)
        {
            var settled = DateTimeOffset.FromUnixTimeSeconds(figure.LastAcknowledgedAt ?? 0) + settings.SummaryLag;
            return last is null ? 0
                : last.AcknowledgedAtSync != figure.Acknowledged ? 1
                : last.StripeTotal != last.AcknowledgedAtSync && last.SyncedAt < settled && now >= settled ? 2
                : now - last.SyncedAt >= settings.Sync.MaxAge ? 3
                : null;
        }
    }

    private sealed record AcknowledgedFigure(string TenantId, string Meter, long Acknowledged, long? LastAcknowledgedAt);

    /// <summary>What Stripe acknowledged to us per tenant and meter for the hours [start, end), and when it last did.</summary>
    private Task<List<AcknowledgedFigure>> AcknowledgedAsync(long start, long end, string? tenantId, CancellationToken cancellationToken) =>
        database.QueryAsync(
            $"""
            SELECT tenant_id, meter, SUM(value), MAX(completed_at) FROM meter_outbox
            WHERE status = 'acknowledged' AND hour_start >= @start AND hour_start < @end {(tenantId is null ? "" : "AND tenant_id = @tenant")}
            GROUP BY tenant_id, meter
            """,
            reader => new AcknowledgedFigure(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), reader.IsDBNull(3) ? null : reader.GetInt64(3)),
            cancellationToken,
            ("start", start),
            ("end", end),
            ("tenant", tenantId));

    /// <summary>Invoices created since the newest seen (less an overlap, as Stripe may show one late), or one customer's of the recent months.</summary>
    private async Task<int> SyncInvoicesAsync(string? customerId, CancellationToken cancellationToken)
    {
        var settings = options.Value.Sync;
        var oldestMonth = RecentMonths(clock.GetUtcNow()).Min();
        var monthStart = UsageHours.Month(oldestMonth).Start;
        var since = customerId is null && await snapshots.MarkAsync(InvoicesMark, cancellationToken) is { } newest
            ? Math.Max(monthStart, newest - (long)settings.InvoiceOverlap.TotalSeconds)
            : monthStart;
        var list = new InvoiceListOptions { Customer = customerId, Created = new DateRangeOptions { GreaterThanOrEqual = DateTimeOffset.FromUnixTimeSeconds(since).UtcDateTime }, Limit = 100 };
        var seen = new List<Invoice>();
        string? after = null;
        do
        {
            list.StartingAfter = after;
            var page = await stripe.CallAsync((client, token) => new InvoiceService(client).ListAsync(list, null, token), cancellationToken, Budget);
            seen.AddRange(page.Data);
            after = page.HasMore ? page.Data[^1].Id : null;
        }
        while (after is not null);

        foreach (var invoice in seen)
        {
            var lines = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var line in invoice.Lines?.Data ?? [])
            {
                if (line.Pricing?.PriceDetails?.PriceId is { } price)
                {
                    lines[price] = lines.GetValueOrDefault(price) + (line.Quantity ?? 0);
                }
            }

            await snapshots.SaveInvoiceAsync(
                new InvoiceSnapshot(
                    invoice.Id,
                    invoice.CustomerId,
                    new DateTimeOffset(invoice.PeriodStart, TimeSpan.Zero).ToUnixTimeSeconds(),
                    new DateTimeOffset(invoice.PeriodEnd, TimeSpan.Zero).ToUnixTimeSeconds(),
                    invoice.Status ?? "draft",
                    lines,
                    clock.GetUtcNow()),
                new DateTimeOffset(invoice.Created, TimeSpan.Zero).ToUnixTimeSeconds(),
                cancellationToken);
        }

        if (customerId is null && seen.Count > 0)
        {
            await snapshots.SetMarkAsync(InvoicesMark, seen.Max(i => new DateTimeOffset(i.Created, TimeSpan.Zero).ToUnixTimeSeconds()), cancellationToken);
        }

        return seen.Count;
    }

    /// <summary>Balance transactions of the customers holding an applied credit not yet seen in Stripe (or of one tenant).</summary>
    private async Task<int> SyncCreditsAsync(string? tenantId, CancellationToken cancellationToken)
    {
        var tenants = tenantId is not null
            ? [tenantId]
            : await database.QueryAsync(
                """
                SELECT DISTINCT c.tenant_id FROM sla_credits c LEFT JOIN stripe_credit_snapshots s ON s.assessment_id = c.assessment_id
                WHERE c.status = 'applied' AND s.transaction_id IS NULL
                """,
                reader => reader.GetString(0),
                cancellationToken);
        var read = 0;
        foreach (var tenant in tenants)
        {
            if (await customers.FindAsync(tenant, cancellationToken) is not { } customerId)
            {
                continue;
            }

            var transactions = await stripe.CallAsync(
                async (client, token) =>
                {
                    var all = new List<CustomerBalanceTransaction>();
                    await foreach (var transaction in new CustomerBalanceTransactionService(client).ListAutoPagingAsync(customerId, new CustomerBalanceTransactionListOptions { Limit = 100 }, null, token))
                    {
                        all.Add(transaction);
                    }

                    return all;
                },
                cancellationToken,
                Budget);
            foreach (var transaction in transactions)
            {
                await snapshots.SaveCreditAsync(
                    new CreditSnapshot(transaction.Id, customerId, transaction.Metadata?.GetValueOrDefault("assessment_id"), transaction.Amount, transaction.Currency, clock.GetUtcNow()),
                    cancellationToken);
                read++;
            }
        }

        return read;
    }
}
