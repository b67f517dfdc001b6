namespace ControlPlane.Hosting;

/// <summary>Section <c>ControlPlane</c>.</summary>
public sealed class ControlPlaneOptions
{
    public const string SectionName = "ControlPlane";

    /// <summary>
    /// Where all durable state lives: the SQLite file, the admin key, and (Local backend) every instance's
    /// data. Set with <c>--data-dir</c>, <c>ControlPlane__DataDir</c> or configuration; default <c>./data</c>.
    /// </summary>
    public string DataDir { get; set; } = "data";
}

/// <summary>Section <c>Orleans</c>: where the embedded silo listens.</summary>
public sealed class SiloOptions
{
    public const string SectionName = "Orleans";

    /// <summary>Silo-to-silo port on 127.0.0.1; 0 picks a free one.</summary>
    public int SiloPort { get; set; }

    /// <summary>Client gateway port; 0 disables it (the API is co-hosted with the silo and needs none).</summary>
    public int GatewayPort { get; set; }

    public string ClusterId { get; set; } = "embedded";

    public string ServiceId { get; set; } = "controlplane";
}
