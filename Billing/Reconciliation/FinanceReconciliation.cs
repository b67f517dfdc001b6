using Billing.Credits;
using Billing.Ledger;
using Billing.Stripe;
using ControlPlane.Persistence;
using Microsoft.Extensions.Options;

namespace Billing.Reconciliation;

/// <summary>
/// Per period, tenant and meter: what the ledger holds, where each unit is in the pipeline (not yet aggregated,
/// pending, acknowledged, rejected, dead-lettered, adjusted), what Stripe's event summary counts and what finalized
/// invoices billed; plus the period's SLA credits. Every difference gets a class from <see cref="DiscrepancyClass"/>.
/// It reads only the database: Stripe's figures are the ones <see cref="StripeSync"/> stored, each with when it was
/// read, and a figure read before Stripe could have counted what it acknowledged is lag, not a mismatch. A handful of
/// set-based queries, whatever the number of tenants, and no call to Stripe on the request path.
/// </summary>
public sealed class FinanceReconciliation(
    Database database,
    UsageLedger ledger,
    StripeCustomers customers,
    SlaCredits credits,
    StripeSnapshots snapshots,
    IOptions<StripeBillingOptions> options,
    TimeProvider clock)
{
    public async Task<ReconciliationReport> ReconcileAsync(DateOnly month, CancellationToken cancellationToken = default)
    {
        var (start, end) = UsageHours.Month(month);
        var now = clock.GetUtcNow();
        var ledgerTotals = await ledger.TotalsAsync(start, end, cancellationToken);
        var unaggregated = await SumByKeyAsync("SELECT tenant_id, meter, SUM(total - enqueued_total) FROM usage_hourly WHERE hour_start >= @start AND hour_start < @end GROUP BY tenant_id, meter", start, end, cancellationToken);
        var adjusted = await SumByKeyAsync("SELECT tenant_id, meter, SUM(quantity) FROM finance_adjustments WHERE hour_start >= @start AND hour_start < @end GROUP BY tenant_id, meter", start, end, cancellationToken);
        var outbox = await OutboxByStatusAsync(start, end, cancellationToken);
        var customerIds = await customers.AllAsync(cancellationToken);
        var stripeSynced = options.Value.Enabled;
        var summaries = await snapshots.SummariesAsync(month, cancellationToken);
        var invoices = await snapshots.InvoicesAsync(start, end, cancellationToken);

        var keys = ledgerTotals.Keys.Concat(unaggregated.Keys).Concat(adjusted.Keys).Concat(outbox.Keys.Select(k => (k.TenantId, k.Meter)))
            .Distinct().OrderBy(k => k.TenantId, StringComparer.Ordinal).ThenBy(k => k.Meter, StringComparer.Ordinal).ToList();
        var byStatus = outbox.ToLookup(o => (o.Key.TenantId, o.Key.Meter));

        var lines = keys.Select(key =>
        {
            var statuses = byStatus[key].ToDictionary(o => o.Key.Status, o => o.Value);
            var summary = stripeSynced ? summaries.GetValueOrDefault(key) : null;
            var priceId = options.Value.MeterOptions(key.Meter).PriceId;
            var customerId = customerIds.GetValueOrDefault(key.TenantId);
            var finalized = customerId is null ? [] : invoices[customerId].Where(i => i.Status is "open" or "paid" or "uncollectible").ToList();
            long? invoiced = stripeSynced && priceId is not null && finalized.Count > 0 ? finalized.Sum(i => i.QuantityByPrice.GetValueOrDefault(priceId)) : null;
            return Classify(
                new LineFigures(
                    key.TenantId,
                    customerId,
                    key.Meter,
                    ledgerTotals.GetValueOrDefault(key),
                    unaggregated.GetValueOrDefault(key),
                    statuses.GetValueOrDefault(OutboxStatus.Pending),
                    statuses.GetValueOrDefault(OutboxStatus.Acknowledged),
                    statuses.GetValueOrDefault(OutboxStatus.Rejected),
                    statuses.GetValueOrDefault(OutboxStatus.Dead),
                    adjusted.GetValueOrDefault(key),
                    invoiced,
                    finalized.Count > 0,
                    finalized.Count > 0 ? finalized.Min(i => i.SyncedAt) : null),
                stripeSynced,
                summary,
                options.Value.SummaryLag,
                now);
        }).ToList();

        var seen = stripeSynced ? await snapshots.CreditsByAssessmentAsync(cancellationToken) : [];
        var creditLines = (await credits.ForMonthAsync(month, cancellationToken)).Select(credit =>
        {
            var inStripe = seen.GetValueOrDefault(credit.AssessmentId);
            List<Discrepancy> found = credit.Status != SlaCreditStatus.Applied
                ? [new(DiscrepancyClass.PipelineLag, credit.CreditMinorUnits, "SLA credit computed, not yet applied in Stripe")]
                : !stripeSynced ? []
                : inStripe is null ? [new(DiscrepancyClass.StripeLag, credit.CreditMinorUnits, "SLA credit applied; the sync has not yet read it back from Stripe")]
                : inStripe.Amount != -credit.CreditMinorUnits ? [new(DiscrepancyClass.StripeCreditMismatch, -inStripe.Amount - credit.CreditMinorUnits, $"Stripe holds {inStripe.Amount} for this credit, not {-credit.CreditMinorUnits}")]
                : [];
            return new CreditLine(
                credit.TenantId,
                customerIds.GetValueOrDefault(credit.TenantId),
                credit.AssessmentId,
                credit.InstanceId,
                credit.CreditMinorUnits,
                credit.Currency,
                credit.Status,
                credit.StripeTransactionId,
                inStripe?.SyncedAt,
                found);
        }).ToList();

        return new ReconciliationReport(month.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture), now, stripeSynced, lines, creditLines);
    }

    /// <summary>Our side of one line; Stripe's comes from the snapshot.</summary>
    internal sealed record LineFigures(
        string TenantId, string? CustomerId, string Meter, long Ledger, long Unaggregated, long Pending, long Acknowledged,
        long Rejected, long Dead, long Adjusted, long? Invoiced, bool Finalized, DateTimeOffset? InvoiceSyncedAt);

    internal static ReconciliationLine Classify(LineFigures our, bool stripeSynced, SummarySnapshot? snapshot, TimeSpan summaryLag, DateTimeOffset now)
    {
        var found = new List<Discrepancy>();
        var accounted = our.Unaggregated + our.Pending + our.Acknowledged + our.Rejected + our.Dead + our.Adjusted;
        if (our.Ledger != accounted)
        {
            found.Add(new(DiscrepancyClass.Unexplained, our.Ledger - accounted, "The ledger differs from everything the pipeline accounts for."));
        }

        if (our.Unaggregated + our.Pending != 0)
        {
            found.Add(new(DiscrepancyClass.PipelineLag, our.Unaggregated + our.Pending, $"{our.Unaggregated} not yet aggregated, {our.Pending} in the outbox awaiting Stripe."));
        }

        if (our.Rejected != 0)
        {
            found.Add(new(DiscrepancyClass.RejectedByStripe, our.Rejected, "Stripe refused these meter events; see the outbox's last_error."));
        }

        if (our.Dead != 0)
        {
            found.Add(new(DiscrepancyClass.DeadLetter, our.Dead, "No definite answer after every attempt, or Stripe's count contradicted ours."));
        }

        if (our.Adjusted != 0)
        {
            found.Add(new(DiscrepancyClass.LateAfterFinalization, our.Adjusted, "Too late for Stripe's 35-day window: billed through a finance adjustment."));
        }

        var summary = snapshot?.StripeTotal;
        if (stripeSynced && our.Acknowledged != 0 && snapshot is null)
        {
            found.Add(new(DiscrepancyClass.StripeLag, our.Acknowledged, "Stripe acknowledged this usage; the sync has not read Stripe's summary of it yet."));
        }
        else if (snapshot is not null && snapshot.StripeTotal != our.Acknowledged)
        {
            var settled = DateTimeOffset.FromUnixTimeSeconds(snapshot.LastAcknowledgedAt ?? 0) + summaryLag;
            var outOfDate = snapshot.AcknowledgedAtSync != our.Acknowledged || snapshot.SyncedAt < settled;
            found.Add(outOfDate
                ? new(DiscrepancyClass.StripeLag, our.Acknowledged - snapshot.StripeTotal, $"Stripe's summary of {snapshot.StripeTotal} was read at {snapshot.SyncedAt:O}, before Stripe could have counted all {our.Acknowledged} it acknowledged; the sync reads it again.")
                : new(DiscrepancyClass.StripeSummaryMismatch, snapshot.StripeTotal - our.Acknowledged, $"Stripe's event summary counts {snapshot.StripeTotal} (read {snapshot.SyncedAt:O}); it acknowledged {our.Acknowledged}."));
        }

        if (our.Finalized && our.Invoiced is { } billed && summary is { } inStripe && billed != inStripe)
        {
            found.Add(new(DiscrepancyClass.LateAfterFinalization, inStripe - billed, $"The finalized invoice billed {billed}; Stripe counted {inStripe} after it."));
        }

        return new ReconciliationLine(
            our.TenantId, our.CustomerId, our.Meter, our.Ledger, our.Unaggregated, our.Pending, our.Acknowledged, our.Rejected, our.Dead, our.Adjusted,
            summary, snapshot?.SyncedAt, snapshot is null ? null : (long)(now - snapshot.SyncedAt).TotalSeconds, our.Invoiced, our.Finalized, our.InvoiceSyncedAt, found);
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
