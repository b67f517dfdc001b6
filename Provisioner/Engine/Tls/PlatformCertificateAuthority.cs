using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Provisioner.Tls;

/// <summary>
/// The platform's own certificate authority: it issues each TLS instance its server certificate, and customers trust
/// it (its certificate comes with the instance's credentials) instead of any public CA. Its key is a platform secret:
/// a 0600 file in a 0700 directory, created on first use and never written anywhere else.
/// </summary>
public sealed class PlatformCertificateAuthority : IDisposable
{
    public const string CertificateFile = "platform-ca.crt";
    public const string KeyFile = "platform-ca.key";

    private static readonly TimeSpan s_caLifetime = TimeSpan.FromDays(3650);
    private const UnixFileMode PrivateFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode PrivateDirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private readonly X509Certificate2 _certificate;
    private readonly ECDsa _key;

    private PlatformCertificateAuthority(X509Certificate2 certificate, ECDsa key)
    {
        _certificate = certificate;
        _key = key;
        CertificatePem = certificate.ExportCertificatePem();
    }

    /// <summary>The CA certificate (no key), PEM: what a client needs to trust the instances' certificates.</summary>
    public string CertificatePem { get; }

    public X509Certificate2 Certificate => _certificate;

    /// <summary>A new CA in memory only (tests, and certificates that need no lasting trust).</summary>
    public static PlatformCertificateAuthority CreateEphemeral(string name = "Control plane platform CA") => Create(name);

    /// <summary>The CA kept in <paramref name="directory"/>; created there on first use, its key 0600.</summary>
    public static PlatformCertificateAuthority LoadOrCreate(string directory, string name = "Control plane platform CA")
    {
        Directory.CreateDirectory(directory, PrivateDirectoryMode);
        File.SetUnixFileMode(directory, PrivateDirectoryMode);
        var certificatePath = Path.Combine(directory, CertificateFile);
        var keyPath = Path.Combine(directory, KeyFile);
        if (File.Exists(certificatePath) && File.Exists(keyPath))
        {
            File.SetUnixFileMode(keyPath, PrivateFileMode);
            var key = ECDsa.Create();
            key.ImportFromPem(File.ReadAllText(keyPath));
            return new PlatformCertificateAuthority(X509CertificateLoader.LoadCertificate(File.ReadAllBytes(certificatePath)), key);
        }

        var authority = Create(name);
        WritePrivate(keyPath, authority._key.ExportPkcs8PrivateKeyPem());
        WritePrivate(certificatePath, authority.CertificatePem);
        return authority;
    }

    /// <summary>A server certificate for <paramref name="dnsNames"/> and <paramref name="addresses"/>, signed by this CA.</summary>
    /// <param name="client">Also for client authentication (mutual TLS, e.g. a silo that both dials and accepts its peers).</param>
    public IssuedCertificate Issue(string commonName, IEnumerable<string> dnsNames, IEnumerable<IPAddress> addresses, TimeSpan lifetime, bool client = false)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        foreach (var dnsName in dnsNames)
        {
            names.AddDnsName(dnsName);
        }

        foreach (var address in addresses)
        {
            names.AddIpAddress(address);
        }

        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, true));
        OidCollection usages = [new Oid("1.3.6.1.5.5.7.3.1")];
        if (client)
        {
            usages.Add(new Oid("1.3.6.1.5.5.7.3.2"));
        }

        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(usages, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_certificate, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        var notBefore = DateTimeOffset.UtcNow.AddMinutes(-5);
        var notAfter = notBefore + lifetime < _certificate.NotAfter ? notBefore + lifetime : new DateTimeOffset(_certificate.NotAfter.ToUniversalTime());
        using var issued = request.Create(_certificate.SubjectName, X509SignatureGenerator.CreateForECDsa(_key), notBefore, notAfter, RandomNumberGenerator.GetBytes(16));
        return new IssuedCertificate(issued.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem(), CertificatePem);
    }

    /// <summary>Whether <paramref name="certificate"/> chains to this CA alone (no system roots): how a client that trusts only it checks a server.</summary>
    public bool Issued(X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(_certificate);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }

    public void Dispose()
    {
        _certificate.Dispose();
        _key.Dispose();
    }

    /// <summary>Writes <paramref name="content"/> 0600, created exclusively (a file or link left at the name is replaced, never followed).</summary>
    public static void WritePrivate(string path, string content) => WritePrivate(path, System.Text.Encoding.UTF8.GetBytes(content));

    /// <inheritdoc cref="WritePrivate(string, string)"/>
    public static void WritePrivate(string path, byte[] content)
    {
        var temporary = path + ".tmp";
        File.Delete(temporary);
        using (var file = new FileStream(temporary, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = PrivateFileMode }))
        {
            file.Write(content);
        }

        File.Move(temporary, path, overwrite: true);
    }

    private static PlatformCertificateAuthority Create(string name)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var notBefore = DateTimeOffset.UtcNow.AddMinutes(-5);
        var certificate = request.CreateSelfSigned(notBefore, notBefore + s_caLifetime);
        // The signing key lives beside the certificate object; keep only the public certificate in it.
        var publicOnly = X509CertificateLoader.LoadCertificate(certificate.Export(X509ContentType.Cert));
        certificate.Dispose();
        return new PlatformCertificateAuthority(publicOnly, key);
    }
}

/// <summary>A certificate the platform CA issued, with its private key and the CA's certificate, all PEM.</summary>
public sealed record IssuedCertificate(string CertificatePem, string PrivateKeyPem, string AuthorityPem)
{
    /// <summary>
    /// The certificate and its key as PEM files, both 0600: what Garnet reads as <c>--cert-file-name</c> and (for a PEM
    /// certificate, a path, not a password) <c>--cert-password</c>.
    /// </summary>
    public void WriteTo(string certificatePath, string keyPath)
    {
        PlatformCertificateAuthority.WritePrivate(keyPath, PrivateKeyPem);
        PlatformCertificateAuthority.WritePrivate(certificatePath, CertificatePem);
    }

    /// <summary>Certificate and key as one PKCS#12 file protected by <paramref name="password"/>, 0600 (Kestrel's certificate file).</summary>
    public void WritePfxTo(string path, string password)
    {
        using var certificate = X509Certificate2.CreateFromPem(CertificatePem, PrivateKeyPem);
        PlatformCertificateAuthority.WritePrivate(path, certificate.Export(X509ContentType.Pfx, password));
    }

    /// <summary>Never the key.</summary>
    public override string ToString() => "[issued certificate]";
}
