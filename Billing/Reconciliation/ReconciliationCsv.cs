using System.Globalization;
using System.Text;

namespace Billing.Reconciliation;

/// <summary>The report as one CSV (RFC 4180): a row per tenant and meter (<c>kind=usage</c>) and per SLA credit (<c>kind=credit</c>).</summary>
public static class ReconciliationCsv
{
    private const string Header =
        "kind,period,tenant_id,customer_id,meter,ledger,unaggregated,pending,acknowledged,rejected,dead_lettered,adjusted,stripe_summary,stripe_summary_synced_at,invoiced,invoice_finalized,invoice_synced_at,assessment_id,credit_minor_units,currency,credit_status,discrepancies";

    public static string Write(ReconciliationReport report)
    {
        var csv = new StringBuilder(Header).Append("\r\n");
        foreach (var line in report.Lines)
        {
            Row(csv, "usage", report.Period, line.TenantId, line.CustomerId, line.Meter, N(line.Ledger), N(line.Unaggregated), N(line.Pending), N(line.Acknowledged),
                N(line.Rejected), N(line.DeadLettered), N(line.Adjusted), N(line.StripeSummary), line.StripeSummarySyncedAt?.ToString("O", CultureInfo.InvariantCulture), N(line.Invoiced), line.InvoiceFinalized ? "true" : "false", line.InvoiceSyncedAt?.ToString("O", CultureInfo.InvariantCulture),
                null, null, null, null, Classes(line.Discrepancies));
        }

        foreach (var credit in report.Credits)
        {
            Row(csv, "credit", report.Period, credit.TenantId, credit.CustomerId, null, null, null, null, null, null, null, null, null, null, null, null, null,
                credit.AssessmentId, N(credit.CreditMinorUnits), credit.Currency, credit.Status, Classes(credit.Discrepancies));
        }

        return csv.ToString();
    }

    private static string? N(long? value) => value?.ToString(CultureInfo.InvariantCulture);

    private static string Classes(IReadOnlyList<Discrepancy> discrepancies) =>
        string.Join(';', discrepancies.Select(d => string.Create(CultureInfo.InvariantCulture, $"{d.Class}={d.Quantity}")));

    private static void Row(StringBuilder csv, params string?[] fields) => csv.Append(Csv.Row(fields));
}
