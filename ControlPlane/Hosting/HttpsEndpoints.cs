using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ControlPlane.Hosting;

/// <summary>
/// HTTPS for the API and portal, with Kestrel's own settings: an <c>https://</c> address in <c>--urls</c> /
/// ASPNETCORE_URLS served with the certificate in <c>Kestrel:Certificates:Default:Path</c> (PKCS#12, or PEM with
/// <c>KeyPath</c>) and <c>Password</c>, or endpoints in <c>Kestrel:Endpoints</c>. The certificate is checked at start-up,
/// so a wrong path or password stops the host with a message rather than a Kestrel stack trace; HTTPS responses carry
/// HSTS (a year; browsers ignore it over plain HTTP, and ASP.NET leaves localhost out so a developer's machine is not pinned).
/// </summary>
public static class HttpsEndpoints
{
    public const string CertificateSection = "Kestrel:Certificates:Default";
    public static readonly TimeSpan HstsMaxAge = TimeSpan.FromDays(365);

    public static WebApplicationBuilder AddHttps(this WebApplicationBuilder builder)
    {
        var configuration = builder.Configuration;
        var urls = (configuration[WebHostDefaults.ServerUrlsKey] ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var certificate = configuration.GetSection(CertificateSection);
        if (urls.Any(url => url.StartsWith("https://", StringComparison.OrdinalIgnoreCase)) && string.IsNullOrWhiteSpace(certificate["Path"]) && string.IsNullOrWhiteSpace(certificate["Subject"]))
        {
            throw new StartupFailedException(
                $"The API is to listen on HTTPS ({string.Join(", ", urls.Where(url => url.StartsWith("https://", StringComparison.OrdinalIgnoreCase)))}) but has no certificate: " +
                $"set {CertificateSection}:Path to a PKCS#12 file (and {CertificateSection}:Password), or to a PEM certificate with {CertificateSection}:KeyPath.");
        }

        if (certificate["Path"] is { Length: > 0 } path)
        {
            Check(path, certificate["KeyPath"], certificate["Password"]);
        }

        builder.Services.AddHsts(hsts =>
        {
            hsts.MaxAge = HstsMaxAge;
            hsts.IncludeSubDomains = false;
        });
        return builder;
    }

    private static void Check(string path, string? keyPath, string? password)
    {
        if (!File.Exists(path))
        {
            throw new StartupFailedException($"{CertificateSection}:Path is '{path}', which does not exist: give the API's certificate file.");
        }

        try
        {
            using var certificate = keyPath is { Length: > 0 }
                ? X509Certificate2.CreateFromPemFile(path, keyPath)
                : X509CertificateLoader.LoadPkcs12FromFile(path, password);
            if (!certificate.HasPrivateKey)
            {
                throw new StartupFailedException($"The certificate in {CertificateSection}:Path '{path}' has no private key: the API cannot serve HTTPS with it.");
            }

            if (certificate.NotAfter.ToUniversalTime() < DateTime.UtcNow)
            {
                throw new StartupFailedException($"The certificate in {CertificateSection}:Path '{path}' expired on {certificate.NotAfter.ToUniversalTime():O}: renew it.");
            }
        }
        catch (CryptographicException exception)
        {
            throw new StartupFailedException(
                $"The certificate in {CertificateSection}:Path '{path}' cannot be read ({exception.Message.TrimEnd('.')}): check the file and {CertificateSection}:Password (or KeyPath).",
                exception);
        }
    }
}
