using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using ControlPlane.Tests.Support;
using StackExchange.Redis;

namespace ControlPlane.Tests.Api;

/// <summary>An instance created with <c>tls</c>: real Garnet serving TLS with a certificate from the platform CA, reached by a real Redis client.</summary>
public sealed class TlsInstanceTests : IAsyncLifetime
{
    private readonly ControlPlaneFactory _factory = new();
    private ControlPlaneApi _api = null!;
    private string _tenantId = "";

    public async Task InitializeAsync()
    {
        _api = _factory.CreateAdminApi();
        _tenantId = (string)(await _api.CreateTenantAsync())["id"]!;
    }

    public async Task DisposeAsync() => await _factory.DisposeAsync();

    [Fact]
    public async Task A_TLS_instance_serves_a_client_trusting_only_the_served_CA_is_probed_healthy_and_refuses_plaintext()
    {
        var catalog = await _api.GetAsync("/api/v1/catalog");
        Assert.True((bool)catalog["products"]!.AsArray().Single(product => (string?)product!["name"] == "garnet")!["tls"]!);

        using var create = await _api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{_tenantId}/instances", new { name = "secure-cache", product = "garnet", size = "small", tls = true });
        var accepted = await ControlPlaneApi.ExpectAsync(create, HttpStatusCode.Accepted);
        var finished = await _api.WaitForOperationAsync(_tenantId, (string)accepted["id"]!);
        Assert.True((string?)finished["status"] == "succeeded", finished.ToJsonString());
        var instanceId = (string)accepted["instanceId"]!;
        var instance = await _api.GetInstanceAsync(_tenantId, instanceId);
        var credentials = await _api.GetCredentialsAsync(_tenantId, instanceId);

        // The platform's own probe (the start step's wait, the reconcile check) got its PONG over TLS.
        Assert.True((bool)instance["tls"]!);
        Assert.Contains((string?)instance["health"], new[] { "healthy", "degraded" });
        Assert.True((bool)credentials["tls"]!);
        Assert.StartsWith("rediss://", (string)credentials["uri"]!, StringComparison.Ordinal);
        using var authority = X509Certificate2.CreateFromPem((string)credentials["caCertificate"]!);

        await using (var connection = await ConnectAsync(credentials, authority))
        {
            var db = connection.GetDatabase();
            Assert.True(await db.StringSetAsync("secret:1", "over tls"));
            Assert.Equal("over tls", (string?)await db.StringGetAsync("secret:1"));
        }

        // Another CA's trust does not do; nor does plaintext, which gets no answer to its AUTH.
        using (var stranger = Provisioner.Tls.PlatformCertificateAuthority.CreateEphemeral("Some other CA"))
        {
            await Assert.ThrowsAnyAsync<RedisException>(() => ConnectAsync(credentials, stranger.Certificate));
        }

        await Assert.ThrowsAnyAsync<RedisException>(() => GarnetClient.ConnectAsync(credentials));
        Assert.Null(await PlaintextAuthReplyAsync((int)credentials["port"]!, (string)credentials["password"]!));
    }

    [Fact]
    public async Task Without_tls_an_instance_serves_plaintext_and_its_credentials_name_no_CA()
    {
        var instance = await _api.CreateRunningInstanceAsync(_tenantId, "plain-cache");
        var credentials = await _api.GetCredentialsAsync(_tenantId, (string)instance["id"]!);

        Assert.False((bool)instance["tls"]!);
        Assert.False((bool)credentials["tls"]!);
        Assert.Null(credentials["caCertificate"]);
        Assert.Equal("+OK", await PlaintextAuthReplyAsync((int)credentials["port"]!, (string)credentials["password"]!));
    }

    /// <summary>StackExchange.Redis over TLS, accepting the server only if its certificate chains to <paramref name="authority"/> and names the host.</summary>
    private static Task<ConnectionMultiplexer> ConnectAsync(JsonNode credentials, X509Certificate2 authority)
    {
        var options = new ConfigurationOptions
        {
            EndPoints = { { (string)credentials["host"]!, (int)credentials["port"]! } },
            Password = (string)credentials["password"]!,
            Ssl = true,
            SslHost = (string)credentials["host"]!,
            AbortOnConnectFail = true,
            ConnectTimeout = 5000,
            SyncTimeout = 5000,
            ConnectRetry = 1,
        };
        options.CertificateValidation += (_, certificate, _, errors) =>
        {
            if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None)
            {
                return false;
            }

            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(authority);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            using var presented = new X509Certificate2(certificate);
            return chain.Build(presented);
        };
        return ConnectionMultiplexer.ConnectAsync(options);
    }

    /// <summary>What the server answers a plaintext AUTH with, or null when it answers nothing readable (a TLS server closes or waits).</summary>
    private static async Task<string?> PlaintextAuthReplyAsync(int port, string password)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, port);
        await socket.SendAsync(Encoding.UTF8.GetBytes($"*2\r\n$4\r\nAUTH\r\n${password.Length}\r\n{password}\r\n"), SocketFlags.None);
        var buffer = new byte[256];
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        try
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, wait.Token);
            var reply = Encoding.UTF8.GetString(buffer, 0, read);
            return reply.StartsWith('+') || reply.StartsWith('-') ? reply.TrimEnd('\r', '\n') : null;
        }
        catch (Exception exception) when (exception is OperationCanceledException or SocketException)
        {
            return null;
        }
    }
}
