using Billing.Sla;

namespace Billing.Credits;

/// <summary>The SLA assessments of closed months whose credits are to be applied; the SLA store implements it.</summary>
public interface ISlaAssessmentSource
{
    Task<IReadOnlyList<SlaAssessment>> AssessmentsForMonthAsync(DateOnly month, CancellationToken cancellationToken = default);

    /// <summary>Every closed month with at least one assessment that earns a credit, oldest first.</summary>
    Task<IReadOnlyList<DateOnly>> MonthsWithCreditsAsync(CancellationToken cancellationToken = default);
}
