using System.Net;
using Microsoft.Extensions.Options;
using Provisioner.CloudApis;

namespace Provisioner.Kubernetes;

/// <summary>How the Kubernetes backend places instances on a cluster (section <c>Provisioner:Kubernetes</c>).</summary>
public sealed class KubernetesBackendOptions
{
    public const string SectionName = "Provisioner:Kubernetes";

    /// <summary>Registers the backend (name <c>kubernetes</c>); off by default, so a machine without a cluster needs nothing.</summary>
    public bool Enabled { get; set; }

    /// <summary>The API server; empty means the pod's own cluster (service account token), or <see cref="KubeConfigPath"/>.</summary>
    public string? ApiServer { get; set; }

    /// <summary>A kubeconfig file to use instead of the in-cluster service account (e.g. on an operator's machine).</summary>
    public string? KubeConfigPath { get; set; }

    /// <summary>Each tenant gets the namespace <c>&lt;prefix&gt;&lt;tenant id&gt;</c>.</summary>
    public string NamespacePrefix { get; set; } = "tenant-";

    /// <summary>The server-side apply field manager: the owner of every field this backend sets.</summary>
    public string FieldManager { get; set; } = "controlplane-provisioner";

    /// <summary><c>ClusterIP</c> (customers connect inside the cluster, by the Service's DNS name) or <c>LoadBalancer</c>.</summary>
    public string ServiceType { get; set; } = "ClusterIP";

    public string ClusterDomain { get; set; } = "cluster.local";

    /// <summary>The storage class of instances' volumes; empty uses the cluster's default.</summary>
    public string? StorageClassName { get; set; }

    /// <summary>
    /// Labels of the namespaces customers' traffic comes from (an ingress controller, the customers' own apps):
    /// the only sources, with <see cref="PlatformNamespaceLabels"/>, that may reach an instance's port.
    /// </summary>
    public Dictionary<string, string> IngressNamespaceLabels { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Labels of the namespace the provisioner and the control plane run in: their probes must reach instances.</summary>
    public Dictionary<string, string> PlatformNamespaceLabels { get; set; } = new(StringComparer.Ordinal);

    /// <summary>The namespace the provisioner and the control plane run in, by name (the same as <see cref="PlatformNamespaceLabels"/> on its name label).</summary>
    public string? PlatformNamespace { get; set; }

    /// <summary>Namespaces, by name, whose pods may connect to instances (beside <see cref="IngressNamespaceLabels"/>).</summary>
    public List<string> IngressNamespaces { get; set; } = [];

    /// <summary>An address range customers connect from through a load balancer (e.g. <c>0.0.0.0/0</c>); none by default.</summary>
    public string? IngressCidr { get; set; }

    /// <summary>A tenant namespace's ResourceQuota: what all its instances together may use.</summary>
    public TenantQuota Quota { get; set; } = new();

    /// <summary>Memory a container gets beyond its size's MemoryMb: the .NET runtime's own, outside the server's caches.</summary>
    public int MemoryOverheadMb { get; set; } = 128;

    /// <summary>How often the backend looks again while it waits for a pod to start or go.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long an instance's objects may take to go away once deleted.</summary>
    public TimeSpan DeleteTimeout { get; set; } = TimeSpan.FromMinutes(2);

    public RetryAfterOptions Http { get; set; } = new();
}

public sealed class TenantQuota
{
    public int Pods { get; set; } = 25;
    public int CpuMillicores { get; set; } = 16000;
    public int MemoryMb { get; set; } = 32768;
    public int StorageGb { get; set; } = 500;
}

public sealed class KubernetesBackendOptionsValidator : IValidateOptions<KubernetesBackendOptions>
{
    public ValidateOptionsResult Validate(string? name, KubernetesBackendOptions options)
    {
        if (!options.Enabled)
        {
            return ValidateOptionsResult.Success;
        }

        const string prefix = KubernetesBackendOptions.SectionName;
        var failures = new List<string>();
        if (!string.IsNullOrEmpty(options.ApiServer) && !Uri.TryCreate(options.ApiServer, UriKind.Absolute, out _))
        {
            failures.Add($"{prefix}:ApiServer '{options.ApiServer}' is not an absolute URL; leave it empty inside the cluster.");
        }

        if (!string.IsNullOrEmpty(options.KubeConfigPath) && !File.Exists(options.KubeConfigPath))
        {
            failures.Add($"{prefix}:KubeConfigPath '{options.KubeConfigPath}' does not exist.");
        }

        if (string.IsNullOrEmpty(options.ApiServer) && string.IsNullOrEmpty(options.KubeConfigPath)
            && Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST") is null)
        {
            failures.Add($"{prefix}: not running in a pod, so set {prefix}:ApiServer or {prefix}:KubeConfigPath to reach the cluster.");
        }

        if (!KubernetesNames.IsDnsLabel(options.NamespacePrefix + "x") || options.NamespacePrefix.Length > 40)
        {
            failures.Add($"{prefix}:NamespacePrefix '{options.NamespacePrefix}' must be lower-case letters, digits and '-', at most 40 characters.");
        }

        if (options.ServiceType is not ("ClusterIP" or "LoadBalancer"))
        {
            failures.Add($"{prefix}:ServiceType must be ClusterIP or LoadBalancer, not '{options.ServiceType}'.");
        }

        if (string.IsNullOrWhiteSpace(options.FieldManager))
        {
            failures.Add($"{prefix}:FieldManager is required: server-side apply records it as the owner of the fields it sets.");
        }

        if (options.IngressCidr is { } cidr && !IPNetwork.TryParse(cidr, out _))
        {
            failures.Add($"{prefix}:IngressCidr '{cidr}' is not an address range (e.g. 10.0.0.0/8).");
        }

        if (options.PlatformNamespaceLabels.Count == 0 && string.IsNullOrEmpty(options.PlatformNamespace))
        {
            failures.Add($"{prefix}:PlatformNamespace (or PlatformNamespaceLabels) is required: the namespace the provisioner and the control plane run in, whose probes must reach instances through their network policy.");
        }

        if (options.PollInterval <= TimeSpan.Zero || options.DeleteTimeout <= TimeSpan.Zero)
        {
            failures.Add($"{prefix}:PollInterval and {prefix}:DeleteTimeout must be positive.");
        }

        if (options.Quota.Pods <= 0 || options.Quota.CpuMillicores <= 0 || options.Quota.MemoryMb <= 0 || options.Quota.StorageGb <= 0)
        {
            failures.Add($"{prefix}:Quota:Pods, CpuMillicores, MemoryMb and StorageGb must be positive.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
