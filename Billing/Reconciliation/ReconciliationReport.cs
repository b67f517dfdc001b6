namespace Billing.Reconciliation;

/// <summary>Why a line's figures disagree. Stable strings: finance filters and scripts use them.</summary>
public static class DiscrepancyClass
{
    /// <summary>Usage not yet aggregated into the outbox, or in the outbox and not yet acknowledged: it will catch up.</summary>
    public const string PipelineLag = "pipeline_lag";
    /// <summary>Gave up without a definite answer, or Stripe's count contradicted ours: needs a person.</summary>
    public const string DeadLetter = "dead_letter";
    /// <summary>Stripe refused the meter event for good (validation, unknown customer or meter).</summary>
    public const string RejectedByStripe = "rejected_by_stripe";
    /// <summary>Usage that reached Stripe after the invoice was finalized, or too late for Stripe at all (a finance adjustment).</summary>
    public const string LateAfterFinalization = "late_after_finalization";
    /// <summary>
    /// Stripe's figure was read before Stripe could have counted everything it acknowledged (it aggregates
    /// asynchronously), or not read yet: the sync reads it again, and it should then agree.
    /// </summary>
    public const string StripeLag = "stripe_lag";
    /// <summary>Stripe holds another amount for an SLA credit than the one we applied.</summary>
    public const string StripeCreditMismatch = "stripe_credit_mismatch";
    /// <summary>Stripe's event summary, read after its aggregation lag, differs from what Stripe acknowledged to us.</summary>
    public const string StripeSummaryMismatch = "stripe_summary_mismatch";
    /// <summary>The ledger differs from everything the pipeline accounts for; should never happen.</summary>
    public const string Unexplained = "unexplained";
}

public sealed record Discrepancy(string Class, long Quantity, string Detail);

/// <summary>
/// One tenant's one meter over the period. Quantities are in the meter's units. Stripe's figures are the sync's, read at
/// <see cref="StripeSummarySyncedAt"/> (<see cref="StripeSummaryAgeSeconds"/> before the report) and, for the invoices,
/// <see cref="InvoiceSyncedAt"/>.
/// </summary>
public sealed record ReconciliationLine(
    string TenantId,
    string? CustomerId,
    string Meter,
    long Ledger,
    long Unaggregated,
    long Pending,
    long Acknowledged,
    long Rejected,
    long DeadLettered,
    long Adjusted,
    long? StripeSummary,
    DateTimeOffset? StripeSummarySyncedAt,
    long? StripeSummaryAgeSeconds,
    long? Invoiced,
    bool InvoiceFinalized,
    DateTimeOffset? InvoiceSyncedAt,
    IReadOnlyList<Discrepancy> Discrepancies);

/// <summary>One SLA credit: computed from an assessment, applied to Stripe (or not yet).</summary>
public sealed record CreditLine(
    string TenantId,
    string? CustomerId,
    string AssessmentId,
    string InstanceId,
    long CreditMinorUnits,
    string Currency,
    string Status,
    string? StripeTransactionId,
    DateTimeOffset? StripeSyncedAt,
    IReadOnlyList<Discrepancy> Discrepancies);

public sealed record ReconciliationReport(
    string Period,
    DateTimeOffset GeneratedAt,
    bool StripeSynced,
    IReadOnlyList<ReconciliationLine> Lines,
    IReadOnlyList<CreditLine> Credits)
{
    public int DiscrepancyCount => Lines.Sum(line => line.Discrepancies.Count) + Credits.Sum(credit => credit.Discrepancies.Count);
}
