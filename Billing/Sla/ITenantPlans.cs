namespace Billing.Sla;

/// <summary>
/// The plans of tenants, which the control plane owns. Billing cannot reference the control plane,
/// so the control plane implements this and registers it.
/// </summary>
public interface ITenantPlans
{
    /// <summary>
    /// The plans, with their SLA terms and prices, in force over [<paramref name="periodStart"/>, <paramref name="periodEnd"/>), in order and covering it (see
    /// <see cref="PlanPeriods.Between"/>), or null when no such tenant exists.
    /// </summary>
    Task<IReadOnlyList<PlanPeriod>?> GetPlanPeriodsAsync(string tenantId, DateTimeOffset periodStart, DateTimeOffset periodEnd, CancellationToken cancellationToken);
}
