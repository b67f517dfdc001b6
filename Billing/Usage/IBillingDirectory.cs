using Billing.Sla;
using Provisioner.Deployments;

namespace Billing.Usage;

/// <summary>Where a probe connects, with the password it authenticates with (never logged: <see cref="Secret"/> redacts itself).</summary>
[GenerateSerializer, Immutable]
public sealed record ProbeTarget
{
    [Id(0)] public required string Host { get; init; }
    [Id(1)] public required int Port { get; init; }
    [Id(2)] public required Secret Password { get; init; }
}

/// <summary>
/// What billing asks of the control plane, which owns tenants and instances. Billing cannot reference the control plane,
/// so the control plane implements this and registers it.
/// </summary>
public interface IBillingDirectory
{
    /// <summary>The tenant's plan with its SLA terms and prices, or null when no such tenant exists.</summary>
    Task<BillingPlan?> GetPlanAsync(string tenantId, CancellationToken cancellationToken);
}
