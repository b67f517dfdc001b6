using Billing.Sla;
using Billing.Stripe;
using Billing.Usage;
using ControlPlane.Auditing;
using ControlPlane.Hosting;
using ControlPlane.Identity;
using ControlPlane.Persistence;
using ControlPlane.Security;

namespace ControlPlane.Tests.Support;

/// <summary>Every migration a control plane registers, for tests that prepare a database without a host.</summary>
public static class TestSchema
{
    public static IReadOnlyList<Migration> All { get; } =
    [
        .. Migrations.Storage,
        ApiKeyStore.Migration,
        .. AuditLog.Migrations,
        UserDirectory.Migration,
        ApiKeyStore.LifecycleMigration,
        SsoSettingsStore.Migration,
        DatabaseKeyRing.Migration,
        LocalAccounts.Migration,
        LifecycleLog.Migration,
        .. SlaSchema.All,
        .. StripeBillingSchema.All,
    ];

    /// <summary>A migrated SQLite file in <paramref name="directory"/>, as embedded mode keeps it.</summary>
    public static Database Sqlite(string directory)
    {
        var database = Database.Sqlite(Path.Combine(directory, "controlplane.db"));
        Migrations.ApplyAsync(database, All).GetAwaiter().GetResult();
        return database;
    }
}
