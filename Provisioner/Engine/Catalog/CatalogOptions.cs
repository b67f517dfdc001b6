namespace Provisioner.Catalog;

/// <summary>
/// The products the control plane can host, bound from the <c>Catalog</c> configuration section.
/// Product, version and size names are the identifiers customers use in the API.
/// </summary>
public sealed class CatalogOptions
{
    public const string SectionName = "Catalog";

    public Dictionary<string, ProductDefinition> Products { get; set; } = new(StringComparer.Ordinal);
}

public sealed class ProductDefinition
{
    public string DisplayName { get; set; } = "";
    public string Description { get; set; } = "";
    public string DefaultVersion { get; set; } = "";
    public string DefaultSize { get; set; } = "";
    public Dictionary<string, ProductVersion> Versions { get; set; } = new(StringComparer.Ordinal);
    public Dictionary<string, ProductSize> Sizes { get; set; } = new(StringComparer.Ordinal);
    /// <summary>How the Local backend runs this product as an OS process.</summary>
    public LocalLaunchTemplate? Local { get; set; }
    /// <summary>How the cloud backends (Kubernetes, Azure) run this product as a container; the image is per version.</summary>
    public ContainerTemplate? Container { get; set; }
}

public sealed class ProductVersion
{
    /// <summary>Where the Local backend finds this version's program, relative to the application's base directory unless absolute.</summary>
    public string Home { get; set; } = "";
    public string? ReleaseNotes { get; set; }
    /// <summary>The container image the cloud backends run for this version, with its tag or digest, e.g. <c>ghcr.io/microsoft/garnet:1.0.84</c>.</summary>
    public string? Image { get; set; }
}

public sealed class ProductSize
{
    public string Description { get; set; } = "";
    /// <summary>The memory cap of one instance of this size.</summary>
    public int MemoryMb { get; set; }
    /// <summary>Cloud backends: the CPU of one instance of this size, in thousandths of a core.</summary>
    public int CpuMillicores { get; set; }
    /// <summary>Cloud backends: the persistent disk of one instance of this size.</summary>
    public int DiskGb { get; set; }
    /// <summary>Product-specific values the launch template refers to as <c>{settings.NAME}</c>.</summary>
    public Dictionary<string, string> Settings { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>
/// A process launch with placeholders: <c>{home}</c>, <c>{port}</c>, <c>{bindAddress}</c>, <c>{dataDir}</c>,
/// <c>{memoryMb}</c>, <c>{memoryBytes}</c>, <c>{memoryBytesHex}</c> (with its <c>0x</c>, as .NET's GC settings
/// want it), <c>{settings.NAME}</c>; and, in <see cref="Secrets"/> only, <c>{password}</c> (never on a command
/// line or in the environment, which /proc shows). <c>{dataDir}</c> must appear as an argument of its own: the
/// Local backend recognises an instance's process by it.
/// </summary>
public sealed class LocalLaunchTemplate
{
    public string Executable { get; set; } = "";
    public List<string> Arguments { get; set; } = [];
    public Dictionary<string, string> Environment { get; set; } = new(StringComparer.Ordinal);
    /// <summary>
    /// Secret material by name (a password, a file's content), written to the process's standard input as one JSON
    /// object and then closed: what neither <c>ps</c> nor <c>/proc/&lt;pid&gt;/environ</c> shows.
    /// </summary>
    public Dictionary<string, string> Secrets { get; set; } = new(StringComparer.Ordinal);
    /// <summary>How long a fresh process may take to answer an authenticated PING.</summary>
    public int StartupTimeoutSeconds { get; set; } = 30;
    /// <summary>
    /// Arguments added for an instance created with TLS; <c>{tlsCertificate}</c> and <c>{tlsKey}</c> are the paths of the
    /// instance's certificate and key (PEM files, 0600, issued by the platform CA). Empty: the product is not offered with TLS.
    /// </summary>
    public List<string> TlsArguments { get; set; } = [];
}
