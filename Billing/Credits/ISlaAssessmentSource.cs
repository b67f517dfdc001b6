using Billing.Sla;

namespace Billing.Credits;

/// <summary>The SLA assessments of a closed month whose credits are to be applied; the SLA store implements it.</summary>
public interface ISlaAssessmentSource
{
    Task<IReadOnlyList<SlaAssessment>> AssessmentsForMonthAsync(DateOnly month, CancellationToken cancellationToken = default);
}
