namespace Billing.Sla;

/// <summary>
/// The plans of tenants, which the control plane owns. Billing cannot reference the control plane,
/// so the control plane implements this and registers it.
/// </summary>
public interface ITenantPlans
{
    /// <summary>The tenant's plan with its SLA terms and prices, or null when no such tenant exists.</summary>
    Task<BillingPlan?> GetPlanAsync(string tenantId, CancellationToken cancellationToken);
}
