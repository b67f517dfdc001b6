using Billing.Credits;
using Billing.Sla;
using Billing.Storage;
using Billing.Stripe;
using Billing.Usage;
using Microsoft.Data.Sqlite;
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
    /// Billing inside the control plane's silo. The host provides <see cref="ITenantPlans"/> and
    /// <see cref="IStripeCustomerSink"/>. One feature per block; each lists its migrations, services and workers.
    /// </summary>
    public static IServiceCollection AddBilling(this IServiceCollection services, IConfiguration configuration, BillingDatabase database)
    {
        services.AddSingleton(database);
        services.AddHostedService<BillingMigrator>();
        services.AddKeyedSingleton(BillingClock.Key, TimeProvider.System);

        // Usage: the instance lifecycle log and each instance's metering grain (instance-seconds, operations).
        services.AddSingleton(LifecycleLog.Migration);
        services.AddSingleton<LifecycleLog>();

        // SLA: probe minutes, maintenance windows, reports, month close and its timer.
        services.AddOptions<SlaOptions>().Bind(configuration.GetSection(SlaOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<SlaOptions>, SlaOptionsValidator>();
        services.AddSingleton(ProbeMinutes.Migration);
        services.AddSingleton(MaintenanceWindows.Migration);
        services.AddSingleton(SlaAssessments.Migration);
        services.AddSingleton<ProbeMinutes>();
        services.AddSingleton<MaintenanceWindows>();
        services.AddSingleton<SlaAssessments>();
        services.AddSingleton<SlaReports>();
        services.AddSingleton<SlaMonthClose>();
        services.AddHostedService<SlaMonthCloseService>();
        services.AddSingleton<ISlaAssessmentSource>(provider => provider.GetRequiredService<SlaAssessments>());

        // Ledger, Stripe (customers, meters, the meter-event outbox and its dispatcher), SLA credits, reconciliation.
        foreach (var migration in StripeBillingSchema.All)
        {
            services.AddSingleton(migration);
        }

        services.AddStripeBilling(configuration);
        return services;
    }

    /// <summary>
    /// Where billing's rows live: with <c>ControlPlane:Mode</c> = <c>Cluster</c>, the PostgreSQL database of
    /// <c>ConnectionStrings:ControlPlane</c>; otherwise (embedded) the control plane's own SQLite file.
    /// </summary>
    public static BillingDatabase DatabaseFor(IConfiguration configuration, string embeddedSqliteFile)
    {
        if (string.Equals(configuration["ControlPlane:Mode"], "Cluster", StringComparison.OrdinalIgnoreCase))
        {
            var connectionString = configuration.GetConnectionString("ControlPlane");
            return string.IsNullOrWhiteSpace(connectionString)
                ? throw new InvalidOperationException("ControlPlane:Mode is Cluster but ConnectionStrings:ControlPlane (PostgreSQL) is not set.")
                : new BillingDatabase(BillingDatabaseProvider.Postgres, connectionString);
        }

        return new BillingDatabase(
            BillingDatabaseProvider.Sqlite,
            new SqliteConnectionStringBuilder { DataSource = embeddedSqliteFile, Mode = SqliteOpenMode.ReadWrite, Pooling = true }.ToString());
    }
}

/// <summary>Applies every registered <see cref="BillingMigration"/> at start-up, before the silo or any worker touches a table.</summary>
public sealed class BillingMigrator(BillingDatabase database, IEnumerable<BillingMigration> migrations) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => database.MigrateAsync(migrations, cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
