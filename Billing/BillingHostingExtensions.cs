using Billing.Credits;
using Billing.Sla;
using Billing.Stripe;
using Billing.Usage;
using ControlPlane.Persistence;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Billing;

/// <summary>
/// The clock every billing time comes from, a keyed <see cref="TimeProvider"/>. It is billing's own so a test can drive
/// months of it without freezing the silo's or the instances' timers.
/// </summary>
public static class BillingClock
{
    public const string Key = "billing";
}

public static class BillingHostingExtensions
{
    /// <summary>
    /// Billing inside the control plane's silo, keeping its rows in the host's <see cref="Database"/> (the control plane's
    /// SQLite file embedded, its PostgreSQL in cluster mode) and applying its migrations with the host's. The host
    /// provides the database, <see cref="ITenantPlans"/> and <see cref="IStripeCustomerSink"/>. One feature per block;
    /// each lists its migrations, services and workers.
    /// </summary>
    public static IServiceCollection AddBilling(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddKeyedSingleton(BillingClock.Key, TimeProvider.System);

        // Usage: the instance lifecycle log and each instance's metering grain (instance-seconds, operations).
        services.AddMigrations([LifecycleLog.Migration]);
        services.AddSingleton<LifecycleLog>();

        // SLA: probe minutes, maintenance windows, reports, month close and its timer.
        services.AddOptions<SlaOptions>().Bind(configuration.GetSection(SlaOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<SlaOptions>, SlaOptionsValidator>();
        services.AddMigrations([ProbeMinutes.Migration, MaintenanceWindows.Migration, MaintenanceWindows.PolicyMigration, SlaAssessments.Migration, SlaAssessments.PlanPeriodsMigration]);
        services.AddSingleton<ProbeMinutes>();
        services.AddSingleton<MaintenanceWindows>();
        services.AddSingleton<SlaAssessments>();
        services.AddSingleton<SlaReports>();
        services.AddSingleton<TenantUsage>();
        services.AddSingleton<SlaMonthClose>();
        services.AddHostedService<SlaMonthCloseService>();
        services.AddSingleton<ISlaAssessmentSource>(provider => provider.GetRequiredService<SlaAssessments>());

        // Ledger, Stripe (customers, meters, the meter-event outbox and its dispatcher), SLA credits, reconciliation.
        services.AddMigrations(StripeBillingSchema.All);
        services.AddStripeBilling(configuration);
        return services;
    }
}
