using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using ControlPlane.Tests.Support;
using Provisioner.Tls;

namespace ControlPlane.Tests.Security;

/// <summary>The real host serving its API over HTTPS with a certificate it was given, as an operator configures Kestrel.</summary>
public sealed class HttpsTests
{
    private const string HostName = "controlplane.test";

    [Fact]
    public async Task Given_a_certificate_the_API_answers_over_HTTPS_with_HSTS_to_a_client_trusting_only_its_issuer()
    {
        using var directory = new TestDirectory();
        using var authority = PlatformCertificateAuthority.CreateEphemeral("HTTPS test CA");
        var pfx = IssueApiCertificate(authority, directory);
        var httpsPort = Ports.Free();
        await using var host = new ControlPlaneProcess(Path.Combine(directory.Path, "data"), Ports.InstanceRange());
        host.Settings["urls"] = $"{host.BaseAddress.ToString().TrimEnd('/')};https://127.0.0.1:{httpsPort.ToString(CultureInfo.InvariantCulture)}";
        host.Settings["Kestrel:Certificates:Default:Path"] = pfx;
        host.Settings["Kestrel:Certificates:Default:Password"] = "pfx-password";
        await host.StartAsync();
        var key = File.ReadAllText(Path.Combine(directory.Path, "data", "admin-api-key")).Trim();

        using var trusting = Client(httpsPort, certificate => authority.Issued(certificate));
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://{HostName}:{httpsPort}/api/v1/catalog");
        request.Headers.Authorization = new("Bearer", key);
        using var response = await trusting.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("max-age=31536000", Assert.Single(response.Headers.GetValues("Strict-Transport-Security")));

        // Plain HTTP carries no HSTS (RFC 6797 forbids it), and a client trusting only the system's roots refuses the certificate.
        using var plain = new HttpClient();
        using var overHttp = await plain.GetAsync(new Uri(host.BaseAddress, "/healthz"));
        Assert.Equal(HttpStatusCode.OK, overHttp.StatusCode);
        Assert.False(overHttp.Headers.Contains("Strict-Transport-Security"));
        using var systemTrust = Client(httpsPort, validate: null);
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => systemTrust.GetAsync(new Uri($"https://{HostName}:{httpsPort}/healthz")));
        Assert.IsType<AuthenticationException>(refused.InnerException);
    }

    [Fact]
    public async Task An_HTTPS_address_without_a_certificate_or_with_a_wrong_password_stops_the_host_saying_what_to_set()
    {
        using var directory = new TestDirectory();
        using var authority = PlatformCertificateAuthority.CreateEphemeral("HTTPS test CA");
        var pfx = IssueApiCertificate(authority, directory);
        var https = $"https://127.0.0.1:{Ports.Free().ToString(CultureInfo.InvariantCulture)}";

        await using var withoutCertificate = new ControlPlaneProcess(Path.Combine(directory.Path, "one"), Ports.InstanceRange());
        withoutCertificate.Settings["urls"] = $"{withoutCertificate.BaseAddress.ToString().TrimEnd('/')};{https}";
        var missing = await Assert.ThrowsAsync<InvalidOperationException>(withoutCertificate.StartAsync);
        await using var wrongPassword = new ControlPlaneProcess(Path.Combine(directory.Path, "two"), Ports.InstanceRange());
        wrongPassword.Settings["urls"] = $"{wrongPassword.BaseAddress.ToString().TrimEnd('/')};{https}";
        wrongPassword.Settings["Kestrel:Certificates:Default:Path"] = pfx;
        wrongPassword.Settings["Kestrel:Certificates:Default:Password"] = "not-the-password";
        var unreadable = await Assert.ThrowsAsync<InvalidOperationException>(wrongPassword.StartAsync);

        Assert.Contains("has no certificate: set Kestrel:Certificates:Default:Path", missing.Message, StringComparison.Ordinal);
        Assert.Contains("cannot be read", unreadable.Message, StringComparison.Ordinal);
        Assert.Contains("Kestrel:Certificates:Default:Password", unreadable.Message, StringComparison.Ordinal);
    }

    /// <summary>The API's certificate for <see cref="HostName"/> and 127.0.0.1, as a PKCS#12 file with password <c>pfx-password</c>.</summary>
    private static string IssueApiCertificate(PlatformCertificateAuthority authority, TestDirectory directory)
    {
        var pfx = Path.Combine(directory.Path, "api.pfx");
        authority.Issue(HostName, [HostName], [IPAddress.Loopback], TimeSpan.FromDays(1)).WritePfxTo(pfx, "pfx-password");
        return pfx;
    }

    /// <summary>Connects to the host's HTTPS port whatever the name in the URL, so the request carries a real host name (SNI, Host).</summary>
    private static HttpClient Client(int port, Func<X509Certificate2, bool>? validate)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(IPAddress.Loopback, port, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            },
        };
        if (validate is not null)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                certificate is X509Certificate2 presented && (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) == SslPolicyErrors.None && validate(presented);
        }

        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(100) };
    }
}
