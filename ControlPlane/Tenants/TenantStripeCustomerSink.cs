using Billing.Stripe;

namespace ControlPlane.Tenants;

/// <summary>Keeps each tenant's Stripe customer id on the tenant, where the API shows it.</summary>
public sealed class TenantStripeCustomerSink(IGrainFactory grains) : IStripeCustomerSink
{
    public Task CustomerCreatedAsync(string tenantId, string customerId, CancellationToken cancellationToken) =>
        grains.GetGrain<ITenantGrain>(tenantId).SetStripeCustomerAsync(customerId);
}
