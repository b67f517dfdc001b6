using System.Security.Cryptography;
using ControlPlane.Hosting;
using ControlPlane.Persistence;
using ControlPlane.Tests.Support;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.DependencyInjection;

namespace ControlPlane.Tests.Security;

/// <summary>Cluster mode's data-protection key ring: one ring in the shared database, so silos read each other's secrets.</summary>
public sealed class DatabaseKeyRingTests
{
    private const string Purpose = "ControlPlane.Identity.Sso.ClientSecret";

    [Fact]
    public async Task A_secret_one_silo_encrypted_is_read_by_another_that_shares_the_database()
    {
        using var directory = new TestDirectory();
        var database = TestSchema.Sqlite(directory.Path);

        var encrypted = Silo(database).CreateProtector(Purpose).Protect("client-secret");
        var decrypted = Silo(database).CreateProtector(Purpose).Unprotect(encrypted);

        Assert.Equal("client-secret", decrypted);
        var keys = await database.QueryAsync("SELECT xml FROM data_protection_keys;", reader => reader.GetString(0), CancellationToken.None);
        Assert.Single(keys);
    }

    [Fact]
    public void A_silo_with_a_ring_of_its_own_cannot_read_it()
    {
        using var first = new TestDirectory();
        using var second = new TestDirectory();

        var encrypted = Silo(TestSchema.Sqlite(first.Path)).CreateProtector(Purpose).Protect("client-secret");

        Assert.ThrowsAny<CryptographicException>(() => Silo(TestSchema.Sqlite(second.Path)).CreateProtector(Purpose).Unprotect(encrypted));
    }

    private static IDataProtectionProvider Silo(Database database)
    {
        var services = new ServiceCollection();
        services.AddDataProtection()
            .SetApplicationName("controlplane")
            .AddKeyManagementOptions(keys => keys.XmlRepository = new DatabaseKeyRing(database));
        return services.BuildServiceProvider().GetRequiredService<IDataProtectionProvider>();
    }
}
