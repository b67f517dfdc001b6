using Billing.Credits;
using Billing.Ledger;
using Billing.Reconciliation;
using Billing.Usage;
using ControlPlane.Persistence;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Billing.Stripe;

/// <summary>The schema of the ledger, the Stripe outbox and the SLA credits, in the order it is applied.</summary>
public static class StripeBillingSchema
{
    public static IReadOnlyList<Migration> All { get; } =
        [.. LedgerMigrations.All, .. StripeMigrations.All, .. CreditMigrations.All, StripeSnapshots.Migration];
}

public static class StripeBillingServiceCollectionExtensions
{
    /// <summary>
    /// The usage ledger, Stripe metered billing, SLA credits and finance reconciliation. Needs a
    /// <see cref="Database"/> and a <see cref="TimeProvider"/> registered by the host; applies its migrations at
    /// start-up and sends to Stripe only when <c>Stripe:ApiKey</c> is set.
    /// </summary>
    public static IServiceCollection AddStripeBilling(this IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<StripeBillingOptions>(configuration.GetSection(StripeBillingOptions.SectionName));
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<UsageLedger>();
        services.AddSingleton<IUsageLedger>(provider => provider.GetRequiredService<UsageLedger>());
        services.AddSingleton<StripeGateway>();
        services.AddSingleton<StripeCustomers>();
        services.AddSingleton<StripeMeters>();
        services.AddSingleton<MeterEventOutbox>();
        services.AddSingleton<MeterEventDispatcher>();
        services.AddSingleton<SlaCredits>();
        services.AddSingleton<StripeSnapshots>();
        services.AddSingleton<StripeSync>();
        services.AddSingleton<StripeSyncService>();
        services.AddHostedService(provider => provider.GetRequiredService<StripeSyncService>());
        services.AddSingleton<FinanceReconciliation>();
        services.AddSingleton<StripeBillingWorker>();
        services.AddHostedService(provider => provider.GetRequiredService<StripeBillingWorker>());
        return services;
    }
}
