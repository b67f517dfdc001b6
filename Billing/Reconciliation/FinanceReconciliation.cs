using System.Collections.Concurrent;
using Billing.Credits;
using Billing.Ledger;
using Billing.Stripe;
using ControlPlane.Persistence;
using Microsoft.Extensions.Options;
using Stripe;

namespace Billing.Reconciliation;

/// <summary>
/// Per period, tenant and meter: what the ledger holds, where each unit is in the pipeline (not yet aggregated,
/// pending, acknowledged, rejected, dead-lettered, adjusted), what Stripe's event summary counts and what finalized
/// invoices billed; plus the period's SLA credits. Every difference gets a class from <see cref="DiscrepancyClass"/>.
/// Our side is a handful of set-based queries; Stripe's side is one summary call per customer and meter and one
/// invoice listing per customer, in parallel.
/// </summary>
public sealed class FinanceReconciliation(
    Database database,
    UsageLedger ledger,
    StripeCustomers customers,
    StripeMeters meters,
    SlaCredits credits,
    StripeGateway stripe,
    IOptions<StripeBillingOptions> options,
    TimeProvider clock)
{
    public async Task<ReconciliationReport> ReconcileAsync(DateOnly month, CancellationToken cancellationToken = default)
    {
        var (start, end) = UsageHours.Month(month);
        var ledgerTotals = await ledger.TotalsAsync(start, end, cancellationToken);
        var unaggregated = await SumByKeyAsync("SELECT tenant_id, meter, SUM(total - enqueued_total) FROM usage_hourly WHERE hour_start >= @start AND hour_start < @end GROUP BY tenant_id, meter", start, end, cancellationToken);
        var adjusted = await SumByKeyAsync("SELECT tenant_id, meter, SUM(quantity) FROM finance_adjustments WHERE hour_start >= @start AND hour_start < @end GROUP BY tenant_id, meter", start, end, cancellationToken);
        var outbox = await OutboxByStatusAsync(start, end, cancellationToken);
        var customerIds = await customers.AllAsync(cancellationToken);
        var meterIds = await meters.AllAsync(cancellationToken);

        var keys = ledgerTotals.Keys.Concat(unaggregated.Keys).Concat(adjusted.Keys).Concat(outbox.Keys.Select(k => (k.TenantId, k.Meter)))
            .Distinct().OrderBy(k => k.TenantId, StringComparer.Ordinal).ThenBy(k => k.Meter, StringComparer.Ordinal).ToList();

        var stripeConsulted = options.Value.Enabled;
        var summaries = new ConcurrentDictionary<(string, string), long>();
        var invoices = new ConcurrentDictionary<string, (Dictionary<string, long> ByPrice, bool Finalized)>(StringComparer.Ordinal);
        if (stripeConsulted)
        {
            var parallel = new ParallelOptions { MaxDegreeOfParallelism = options.Value.MaxConcurrentLanes, CancellationToken = cancellationToken };
            await Parallel.ForEachAsync(
                keys.Where(k => customerIds.ContainsKey(k.TenantId) && meterIds.ContainsKey(k.Meter)),
                parallel,
                async (key, token) => summaries[key] = await stripe.EventSummaryAsync(meterIds[key.Meter], customerIds[key.TenantId], start, end, token));
            await Parallel.ForEachAsync(
                keys.Select(k => k.TenantId).Distinct().Where(customerIds.ContainsKey),
                parallel,
                async (tenant, token) => invoices[tenant] = await InvoicedAsync(customerIds[tenant], start, end, token));
        }

        var lines = keys.Select(key =>
        {
            var byStatus = outbox.Where(o => o.Key.TenantId == key.TenantId && o.Key.Meter == key.Meter).ToDictionary(o => o.Key.Status, o => o.Value);
            long? summary = summaries.TryGetValue(key, out var s) ? s : null;
            var priceId = options.Value.MeterOptions(key.Meter).PriceId;
            var invoice = invoices.TryGetValue(key.TenantId, out var i) ? i : (ByPrice: new Dictionary<string, long>(), Finalized: false);
            long? invoiced = stripeConsulted && priceId is not null && invoice.Finalized ? invoice.ByPrice.GetValueOrDefault(priceId) : null;
            return Classify(
                key.TenantId,
                customerIds.GetValueOrDefault(key.TenantId),
                key.Meter,
                ledgerTotals.GetValueOrDefault(key),
                unaggregated.GetValueOrDefault(key),
                byStatus.GetValueOrDefault(OutboxStatus.Pending),
                byStatus.GetValueOrDefault(OutboxStatus.Acknowledged),
                byStatus.GetValueOrDefault(OutboxStatus.Rejected),
                byStatus.GetValueOrDefault(OutboxStatus.Dead),
                adjusted.GetValueOrDefault(key),
                summary,
                invoiced,
                invoice.Finalized);
        }).ToList();

        var creditLines = (await credits.ForMonthAsync(month, cancellationToken)).Select(credit => new CreditLine(
            credit.TenantId,
            customerIds.GetValueOrDefault(credit.TenantId),
            credit.AssessmentId,
            credit.InstanceId,
            credit.CreditMinorUnits,
            credit.Currency,
            credit.Status,
            credit.StripeTransactionId,
            credit.Status == SlaCreditStatus.Applied
                ? []
                : [new Discrepancy(DiscrepancyClass.PipelineLag, credit.CreditMinorUnits, "SLA credit computed, not yet applied in Stripe")])).ToList();

        return new ReconciliationReport(month.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture), clock.GetUtcNow(), stripeConsulted, lines, creditLines);
    }

    internal static ReconciliationLine Classify(
        string tenantId, string? customerId, string meter, long ledgerTotal, long unaggregated, long pending, long acknowledged,
        long rejected, long dead, long adjusted, long? summary, long? invoiced, bool finalized)
    {
        var found = new List<Discrepancy>();
        var accounted = unaggregated + pending + acknowledged + rejected + dead + adjusted;
        if (ledgerTotal != accounted)
        {
            found.Add(new(DiscrepancyClass.Unexplained, ledgerTotal - accounted, "The ledger differs from everything the pipeline accounts for."));
        }

        if (unaggregated + pending != 0)
        {
            found.Add(new(DiscrepancyClass.PipelineLag, unaggregated + pending, $"{unaggregated} not yet aggregated, {pending} in the outbox awaiting Stripe."));
        }

        if (rejected != 0)
        {
            found.Add(new(DiscrepancyClass.RejectedByStripe, rejected, "Stripe refused these meter events; see the outbox's last_error."));
        }

        if (dead != 0)
        {
            found.Add(new(DiscrepancyClass.DeadLetter, dead, "No definite answer after every attempt, or Stripe's count contradicted ours."));
        }

        if (adjusted != 0)
        {
            found.Add(new(DiscrepancyClass.LateAfterFinalization, adjusted, "Too late for Stripe's 35-day window: billed through a finance adjustment."));
        }

        if (summary is { } counted && counted != acknowledged)
        {
            found.Add(new(DiscrepancyClass.StripeSummaryMismatch, counted - acknowledged, $"Stripe's event summary counts {counted}; it acknowledged {acknowledged}."));
        }

        if (finalized && invoiced is { } billed && summary is { } inStripe && billed != inStripe)
        {
            found.Add(new(DiscrepancyClass.LateAfterFinalization, inStripe - billed, $"The finalized invoice billed {billed}; Stripe counted {inStripe} after it."));
        }

        return new ReconciliationLine(tenantId, customerId, meter, ledgerTotal, unaggregated, pending, acknowledged, rejected, dead, adjusted, summary, invoiced, finalized, found);
    }

    private async Task<(Dictionary<string, long> ByPrice, bool Finalized)> InvoicedAsync(string customerId, long start, long end, CancellationToken cancellationToken)
    {
        var byPrice = new Dictionary<string, long>(StringComparer.Ordinal);
        var finalized = false;
        await stripe.CallAsync(
            async (client, token) =>
            {
                var list = new InvoiceListOptions { Customer = customerId, Created = new DateRangeOptions { GreaterThanOrEqual = DateTimeOffset.FromUnixTimeSeconds(start).UtcDateTime }, Limit = 100 };
                await foreach (var invoice in new InvoiceService(client).ListAutoPagingAsync(list, null, token))
                {
                    var periodStart = new DateTimeOffset(invoice.PeriodStart, TimeSpan.Zero).ToUnixTimeSeconds();
                    var periodEnd = new DateTimeOffset(invoice.PeriodEnd, TimeSpan.Zero).ToUnixTimeSeconds();
                    if (periodStart < start || periodEnd > end || invoice.Status is not ("open" or "paid" or "uncollectible"))
                    {
                        continue;
                    }

                    finalized = true;
                    foreach (var line in invoice.Lines?.Data ?? [])
                    {
                        if (line.Pricing?.PriceDetails?.PriceId is { } price)
                        {
                            byPrice[price] = byPrice.GetValueOrDefault(price) + (line.Quantity ?? 0);
                        }
                    }
                }

                return byPrice;
            },
            cancellationToken);
        return (byPrice, finalized);
    }

    private async Task<Dictionary<(string TenantId, string Meter), long>> SumByKeyAsync(string sql, long start, long end, CancellationToken cancellationToken)
    {
        var sums = new Dictionary<(string, string), long>();
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = MeterEventOutbox.Command(connection, null, sql);
        Database.AddParameter(command, "start", start);
        Database.AddParameter(command, "end", end);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            sums[(reader.GetString(0), reader.GetString(1))] = reader.GetInt64(2);
        }

        return sums;
    }

    private async Task<Dictionary<(string TenantId, string Meter, string Status), long>> OutboxByStatusAsync(long start, long end, CancellationToken cancellationToken)
    {
        var sums = new Dictionary<(string, string, string), long>();
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = MeterEventOutbox.Command(connection, null, "SELECT tenant_id, meter, status, SUM(value) FROM meter_outbox WHERE hour_start >= @start AND hour_start < @end GROUP BY tenant_id, meter, status");
        Database.AddParameter(command, "start", start);
        Database.AddParameter(command, "end", end);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            sums[(reader.GetString(0), reader.GetString(1), reader.GetString(2))] = reader.GetInt64(3);
        }

        return sums;
    }
}
