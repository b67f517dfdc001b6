using Billing.Sla;
using ControlPlane.Tenants;
using Microsoft.Extensions.Options;

namespace ControlPlane.Sla;

/// <summary>Answers billing's questions about tenants from the tenants' grains and the plan configuration.</summary>
public sealed class TenantPlansForBilling(IGrainFactory grains, IOptionsMonitor<PlanOptions> plans) : ITenantPlans
{
    public async Task<BillingPlan?> GetPlanAsync(string tenantId, CancellationToken cancellationToken)
    {
        var tenant = await grains.GetGrain<ITenantGrain>(tenantId).GetAsync().WaitAsync(cancellationToken);
        if (tenant is null)
        {
            return null;
        }

        // A plan missing from configuration promises no SLA and prices nothing, rather than failing the month's close.
        var definition = plans.CurrentValue.Definitions.GetValueOrDefault(tenant.Plan) ?? new PlanDefinition();
        return new BillingPlan(tenant.Plan, definition.Sla, definition.Prices);
    }
}
