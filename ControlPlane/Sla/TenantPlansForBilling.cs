using Billing.Sla;
using ControlPlane.Tenants;
using Microsoft.Extensions.Options;

namespace ControlPlane.Sla;

/// <summary>Answers billing's questions about tenants from the tenants' grains and the plan configuration.</summary>
public sealed class TenantPlansForBilling(IGrainFactory grains, IOptionsMonitor<PlanOptions> plans) : ITenantPlans
{
    public async Task<IReadOnlyList<PlanPeriod>?> GetPlanPeriodsAsync(string tenantId, DateTimeOffset periodStart, DateTimeOffset periodEnd, CancellationToken cancellationToken)
    {
        var history = await grains.GetGrain<ITenantGrain>(tenantId).GetPlanHistoryAsync().WaitAsync(cancellationToken);
        return history is null
            ? null
            : PlanPeriods.Between(Plan(history.InitialPlan), history.Changes.Select(change => new PlanChangeAt(change.At, Plan(change.ToPlan))), periodStart, periodEnd);
    }

    // A plan missing from configuration promises no SLA and prices nothing, rather than failing the month's close.
    private BillingPlan Plan(string name)
    {
        var definition = plans.CurrentValue.Definitions.GetValueOrDefault(name) ?? new PlanDefinition();
        return new BillingPlan(name, definition.Sla, definition.Prices);
    }
}
