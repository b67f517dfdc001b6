using System.Net;
using System.Runtime.Versioning;
using Microsoft.Extensions.Options;
using Provisioner.Catalog;
using Provisioner.Deployments;
using Provisioner.Tls;

namespace Provisioner.Local;

/// <summary>
/// TLS for the Local backend's instances, all in one place: the platform CA (kept beside the instances directory, in
/// <c>platform-ca/</c>, its key 0600), a server certificate per instance issued at each start for the names the
/// instance is reached by (PEM certificate and key files, 0600, in the instance's directory: no password anywhere),
/// and the product's <see cref="LocalLaunchTemplate.TlsArguments"/> that make it serve with them.
/// </summary>
[SupportedOSPlatform("linux")]
internal sealed class LocalTls(IOptions<LocalBackendOptions> options)
{
    public const string CertificatePlaceholder = "tlsCertificate";
    public const string KeyPlaceholder = "tlsKey";
    public const string CertificateFile = "tls.crt";
    public const string KeyFile = "tls.key";

    /// <summary>Within the 398 days clients accept; a start (any restart, scale or upgrade) issues a fresh one.</summary>
    private static readonly TimeSpan s_lifetime = TimeSpan.FromDays(397);

    private readonly Lazy<PlatformCertificateAuthority> _authority = new(() => PlatformCertificateAuthority.LoadOrCreate(AuthorityDirectory(options.Value)));

    /// <summary>The CA's certificate, PEM: reported with a TLS instance's observation, served with its credentials.</summary>
    public string AuthorityPem => _authority.Value.CertificatePem;

    public static string AuthorityDirectory(LocalBackendOptions settings) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(settings.InstancesDirectory).TrimEnd(Path.DirectorySeparatorChar))!, "platform-ca");

    /// <summary><paramref name="launch"/> serving TLS only, with a certificate issued now into the instance's directory.</summary>
    public LaunchCommand Apply(LaunchCommand launch, CatalogOffering offering, LocalInstancePaths paths, DeploymentSpec desired)
    {
        var arguments = offering.Definition.Local!.TlsArguments;
        if (arguments.Count == 0)
        {
            throw new DeploymentFailedException(
                "tls-unsupported",
                $"{offering.Definition.DisplayName} is not offered with TLS on the local backend (its catalog entry has no Local:TlsArguments); create the instance without tls.");
        }

        var settings = options.Value;
        var certificate = Path.Combine(paths.Root, CertificateFile);
        var key = Path.Combine(paths.Root, KeyFile);
        var names = new[] { "localhost", settings.AdvertisedHost }.OfType<string>().Where(name => !IPAddress.TryParse(name, out _)).Distinct(StringComparer.OrdinalIgnoreCase);
        var addresses = new[] { IPAddress.Loopback.ToString(), settings.BindAddress, settings.AdvertisedHost }
            .Select(address => IPAddress.TryParse(address, out var parsed) ? parsed : null)
            .OfType<IPAddress>()
            .Where(address => !address.Equals(IPAddress.Any) && !address.Equals(IPAddress.IPv6Any))
            .Distinct();
        _authority.Value.Issue(desired.InstanceId, names, addresses, s_lifetime).WriteTo(certificate, key);
        var values = new Dictionary<string, string>(StringComparer.Ordinal) { [CertificatePlaceholder] = certificate, [KeyPlaceholder] = key };
        return launch with { Arguments = [.. launch.Arguments, .. arguments.Select(argument => LaunchCommand.Fill(argument, values))] };
    }
}
