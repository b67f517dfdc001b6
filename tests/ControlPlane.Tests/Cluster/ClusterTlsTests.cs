using System.Net;
using ControlPlane.Tests.Support;
using Npgsql;
using Provisioner.Tls;
using TestServers;

namespace ControlPlane.Tests.Cluster;

/// <summary>Silo-to-silo TLS in cluster mode: silos holding certificates from the cluster's CA form a cluster; others cannot join.</summary>
public sealed class ClusterTlsTests : IDisposable
{
    private readonly TestDirectory _directory = new();
    private readonly string _clusterId = $"tls-{Guid.NewGuid():N}"[..20];
    private readonly PlatformCertificateAuthority _authority = PlatformCertificateAuthority.CreateEphemeral("Cluster CA");

    public void Dispose()
    {
        _authority.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public async Task Two_silos_with_certificates_from_the_cluster_CA_form_a_cluster_over_TLS_and_a_silo_from_another_CA_is_refused()
    {
        var connectionString = await PostgresServer.CreateDatabaseAsync("clustertls");
        var caPath = WriteAuthority(_authority, "cluster-ca.crt");
        await using var first = Silo("one", connectionString, Issue(_authority, "one"), caPath);
        await using var second = Silo("two", connectionString, Issue(_authority, "two"), caPath);
        await Task.WhenAll(first.StartAsync(), second.StartAsync());

        Assert.Equal(2L, await ScalarAsync(connectionString, $"SELECT count(*) FROM OrleansMembershipTable WHERE DeploymentId = '{_clusterId}' AND Status = 3"));
        // Work spread over both silos: each tenant's grain lives on one of them, and is reached from the other over TLS.
        // One admin key for the cluster, written by the silo that created it.
        var adminKey = File.ReadAllText(Assert.Single(new[] { "one", "two" }.Select(name => Path.Combine(_directory.Path, name, "admin-api-key")), File.Exists)).Trim();
        var apis = new[] { first.CreateApi(adminKey), second.CreateApi(adminKey) };
        for (var i = 0; i < 6; i++)
        {
            var created = await apis[i % 2].CreateTenantAsync($"Tls Tenant {i}", "team");
            Assert.Equal((string?)created["name"], (string?)(await apis[(i + 1) % 2].GetAsync($"/api/v1/tenants/{(string)created["id"]!}"))["name"]);
        }

        // A silo whose certificate another CA issued (the cluster's CA file in hand, say) is refused by the others' TLS: it never joins.
        using var stranger = PlatformCertificateAuthority.CreateEphemeral("Some other CA");
        await using var intruder = Silo("intruder", connectionString, Issue(stranger, "intruder"), WriteAuthority(stranger, "other-ca.crt"));
        // It gives up (Orleans checks its connectivity to the active silos before it joins), or at least never becomes ready.
        var refused = await Record.ExceptionAsync(intruder.StartAsync);

        Assert.True(refused is InvalidOperationException or TimeoutException, refused?.ToString() ?? "The intruder silo became ready.");
        Assert.Equal(2L, await ScalarAsync(connectionString, $"SELECT count(*) FROM OrleansMembershipTable WHERE DeploymentId = '{_clusterId}' AND Status = 3"));
    }

    [Fact]
    public async Task Misconfigured_silo_TLS_stops_the_silo_saying_what_to_set()
    {
        await using var embedded = new ControlPlaneProcess(Path.Combine(_directory.Path, "embedded"), Ports.InstanceRange());
        embedded.Settings["Orleans:Tls:CaCertificatePath"] = WriteAuthority(_authority, "ca.crt");
        var inEmbeddedMode = await Assert.ThrowsAsync<InvalidOperationException>(embedded.StartAsync);

        var connectionString = await PostgresServer.CreateDatabaseAsync("clustertls");
        await using var halfConfigured = Silo("half", connectionString, Issue(_authority, "half"), caPath: null);
        var withoutCa = await Assert.ThrowsAsync<InvalidOperationException>(halfConfigured.StartAsync);
        using var other = PlatformCertificateAuthority.CreateEphemeral("Another CA");
        await using var mismatched = Silo("mismatched", connectionString, Issue(other, "mismatched"), WriteAuthority(_authority, "ca.crt"));
        var foreignCertificate = await Assert.ThrowsAsync<InvalidOperationException>(mismatched.StartAsync);

        Assert.Contains("ControlPlane:Mode is Embedded", inEmbeddedMode.Message, StringComparison.Ordinal);
        Assert.Contains("Orleans:Tls:CaCertificatePath", withoutCa.Message, StringComparison.Ordinal);
        Assert.Contains("is not issued by the CA in Orleans:Tls:CaCertificatePath", foreignCertificate.Message, StringComparison.Ordinal);
    }

    private ControlPlaneProcess Silo(string name, string connectionString, string certificatePath, string? caPath)
    {
        // Cluster mode needs the key set that seals instance passwords, shared by every silo: here one file.
        var keyFile = new ControlPlane.Secrets.SecretKeyFile(Path.Combine(_directory.Path, "cluster-secret-keys"));
        keyFile.EnsureCreated();
        var settings = new Dictionary<string, string>
        {
            ["ControlPlane:Mode"] = "Cluster",
            ["ConnectionStrings:ControlPlane"] = connectionString,
            ["Orleans:ClusterId"] = _clusterId,
            ["Orleans:AdvertisedIPAddress"] = "127.0.0.1",
            ["Orleans:Tls:CertificatePath"] = certificatePath,
            ["Orleans:Tls:CertificatePassword"] = "silo-password",
            ["Provisioner:Local:InstancesDirectory"] = Path.Combine(_directory.Path, "instances"),
            ["Orleans:Messaging:ResponseTimeout"] = "00:00:10",
            ["Secrets:KeyFile"] = keyFile.Path,
        };
        if (caPath is not null)
        {
            settings["Orleans:Tls:CaCertificatePath"] = caPath;
        }

        return new ControlPlaneProcess(Path.Combine(_directory.Path, name), Ports.InstanceRange(), settings);
    }

    private string Issue(PlatformCertificateAuthority authority, string silo)
    {
        var path = Path.Combine(_directory.Path, $"{silo}.pfx");
        authority.Issue($"silo-{silo}", [$"silo-{silo}"], [IPAddress.Loopback], TimeSpan.FromDays(1), client: true).WritePfxTo(path, "silo-password");
        return path;
    }

    private string WriteAuthority(PlatformCertificateAuthority authority, string file)
    {
        var path = Path.Combine(_directory.Path, file);
        File.WriteAllText(path, authority.CertificatePem);
        return path;
    }

    private static async Task<object?> ScalarAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }
}
