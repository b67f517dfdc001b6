using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Orleans.Connections.Security;

namespace ControlPlane.Hosting;

/// <summary>
/// Section <c>Orleans:Tls</c>: in cluster mode, silos talk to each other (and gateways to clients) over mutual TLS when
/// given a certificate. Each silo presents its own certificate (PKCS#12 with a password, or PEM with a key file) and
/// accepts a peer only if the peer's certificate chains to <see cref="CaCertificatePath"/> alone: a process that can
/// reach the silo port but holds no certificate from that CA cannot join the cluster or call a grain.
/// </summary>
public sealed class SiloTlsOptions
{
    public const string SectionName = "Orleans:Tls";

    /// <summary>This silo's certificate: a PKCS#12 file (with <see cref="CertificatePassword"/>), or PEM with <see cref="KeyPath"/>.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>The PKCS#12 file's password (from the environment or a secret: <c>Orleans__Tls__CertificatePassword</c>).</summary>
    public string? CertificatePassword { get; set; }

    /// <summary>For a PEM certificate: its private key file.</summary>
    public string? KeyPath { get; set; }

    /// <summary>The CA (PEM or DER) every silo's certificate must chain to; the only root trusted for silo connections.</summary>
    public string? CaCertificatePath { get; set; }

    public bool Configured => !string.IsNullOrWhiteSpace(CertificatePath) || !string.IsNullOrWhiteSpace(CaCertificatePath);
}

public static class SiloTls
{
    /// <summary>
    /// Applies <c>Orleans:Tls</c> to the silo when set; a setting that cannot work stops the silo with a message saying what to
    /// set. Answers whether TLS is on.
    /// </summary>
    public static bool UseSiloTls(this ISiloBuilder silo, IConfiguration configuration, bool clusterMode)
    {
        var options = configuration.GetSection(SiloTlsOptions.SectionName).Get<SiloTlsOptions>() ?? new SiloTlsOptions();
        if (!options.Configured)
        {
            return false;
        }

        if (!clusterMode)
        {
            throw new StartupFailedException(
                $"{SiloTlsOptions.SectionName} is set, but ControlPlane:Mode is Embedded, whose one silo talks to nobody else: remove the " +
                $"{SiloTlsOptions.SectionName} settings, or run in cluster mode.");
        }

        var (certificate, authority) = Load(options);
        silo.UseTls(certificate, tls =>
        {
            tls.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
            tls.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
            tls.CheckCertificateRevocation = false;
            // Silos are dialled by address, not by a name on their certificate: what proves a peer is that the platform's CA issued it.
            tls.RemoteCertificateValidation = (presented, _, errors) => IssuedBy(authority, presented, errors);
            tls.OnAuthenticateAsClient = (_, client) => client.TargetHost = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        });
        return true;
    }

    /// <summary>Whether <paramref name="presented"/> chains to <paramref name="authority"/> with no other root and no other fault than an unknown root or name.</summary>
    public static bool IssuedBy(X509Certificate2 authority, X509Certificate2? presented, SslPolicyErrors errors)
    {
        if (presented is null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(presented);
    }

    private static (X509Certificate2 Certificate, X509Certificate2 Authority) Load(SiloTlsOptions options)
    {
        var section = SiloTlsOptions.SectionName;
        if (string.IsNullOrWhiteSpace(options.CertificatePath) || string.IsNullOrWhiteSpace(options.CaCertificatePath))
        {
            throw new StartupFailedException(
                $"Silo TLS needs both {section}:CertificatePath (this silo's certificate: PKCS#12 with {section}:CertificatePassword, or PEM with " +
                $"{section}:KeyPath) and {section}:CaCertificatePath (the CA every silo's certificate is issued by); set both, or neither for plain TCP.");
        }

        foreach (var (setting, path) in new[] { ("CertificatePath", options.CertificatePath), ("CaCertificatePath", options.CaCertificatePath), ("KeyPath", options.KeyPath) })
        {
            if (path is { Length: > 0 } && !File.Exists(path))
            {
                throw new StartupFailedException($"{section}:{setting} is '{path}', which does not exist.");
            }
        }

        X509Certificate2 certificate;
        X509Certificate2 authority;
        try
        {
            certificate = options.KeyPath is { Length: > 0 } keyPath
                ? X509Certificate2.CreateFromPemFile(options.CertificatePath, keyPath)
                : X509CertificateLoader.LoadPkcs12FromFile(options.CertificatePath, options.CertificatePassword);
            authority = X509CertificateLoader.LoadCertificateFromFile(options.CaCertificatePath);
        }
        catch (CryptographicException exception)
        {
            throw new StartupFailedException(
                $"The silo's TLS certificate or CA cannot be read ({exception.Message.TrimEnd('.')}): check {section}:CertificatePath, " +
                $"{section}:CertificatePassword or KeyPath, and {section}:CaCertificatePath.",
                exception);
        }

        if (!certificate.HasPrivateKey)
        {
            throw new StartupFailedException($"{section}:CertificatePath '{options.CertificatePath}' has no private key: give the PKCS#12 file with its key, or {section}:KeyPath.");
        }

        if (!IssuedBy(authority, certificate, SslPolicyErrors.None))
        {
            throw new StartupFailedException(
                $"This silo's certificate ({certificate.Subject}) is not issued by the CA in {section}:CaCertificatePath ({authority.Subject}), or has expired: " +
                "the other silos would refuse it. Issue it from that CA.");
        }

        return (certificate, authority);
    }
}
