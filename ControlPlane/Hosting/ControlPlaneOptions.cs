namespace ControlPlane.Hosting;

/// <summary>How the control plane runs; the two differ only in configuration and the adapters registered.</summary>
public enum ControlPlaneMode
{
    /// <summary>One process, no dependencies: localhost clustering and one SQLite file in the data directory.</summary>
    Embedded,

    /// <summary>Several silo processes form one Orleans cluster over PostgreSQL (<c>ConnectionStrings:ControlPlane</c>).</summary>
    Cluster,
}

/// <summary>Section <c>ControlPlane</c>.</summary>
public sealed class ControlPlaneOptions
{
    public const string SectionName = "ControlPlane";

    /// <summary>The connection string (<c>ConnectionStrings:ControlPlane</c>) of cluster mode's PostgreSQL database.</summary>
    public const string ConnectionStringName = "ControlPlane";

    public ControlPlaneMode Mode { get; set; } = ControlPlaneMode.Embedded;

    /// <summary>
    /// Where this process's durable state lives: the SQLite file (embedded), the admin key, and (Local backend) every
    /// instance's data. In cluster mode each silo has its own. Set with <c>--data-dir</c>, <c>ControlPlane__DataDir</c>
    /// or configuration; default <c>./data</c>.
    /// </summary>
    public string DataDir { get; set; } = "data";
}

/// <summary>
/// Section <c>Orleans</c>: where the silo listens and which cluster it joins. Embedded, the silo listens on 127.0.0.1
/// only. In cluster mode (e.g. in a pod) it listens on <see cref="ListenAddress"/> and tells the others to reach it at
/// <see cref="AdvertisedIPAddress"/>; <c>Orleans:Membership</c> and <c>Orleans:Messaging</c> tune Orleans'
/// <c>ClusterMembershipOptions</c> and <c>SiloMessagingOptions</c> (e.g. how fast a dead silo is declared dead).
/// </summary>
public sealed class SiloOptions
{
    public const string SectionName = "Orleans";

    /// <summary>Silo-to-silo port; 0 picks a free one (fine on one machine; give a fixed one in pods).</summary>
    public int SiloPort { get; set; }

    /// <summary>Client gateway port; 0 disables it (the API is co-hosted with the silo and needs none).</summary>
    public int GatewayPort { get; set; }

    /// <summary>Silos with the same ClusterId form one cluster; default <c>embedded</c>, or <c>controlplane</c> in cluster mode.</summary>
    public string? ClusterId { get; set; }

    /// <summary>Names the service across deployments; reminders and grain state belong to it.</summary>
    public string ServiceId { get; set; } = "controlplane";

    /// <summary>Cluster mode: the address other silos reach this one at (a pod's IP); default 127.0.0.1.</summary>
    public string? AdvertisedIPAddress { get; set; }

    /// <summary>Cluster mode: the local address to listen on (<c>0.0.0.0</c> in a pod); default the advertised address.</summary>
    public string? ListenAddress { get; set; }
}
