using System.Text.RegularExpressions;
using Provisioner.Deployments;

namespace Provisioner.Kubernetes;

/// <summary>The names, labels and annotations the backend gives what it creates, and reads back.</summary>
public static partial class KubernetesNames
{
    public const string ManagedBy = "app.kubernetes.io/managed-by";
    public const string ManagedByValue = "controlplane";
    public const string InstanceLabel = "controlplane.io/instance";
    public const string TenantLabel = "controlplane.io/tenant";
    public const string ProductLabel = "app.kubernetes.io/name";

    public const string GenerationAnnotation = "controlplane.io/generation";
    public const string ProductAnnotation = "controlplane.io/product";
    public const string VersionAnnotation = "controlplane.io/version";
    public const string SizeAnnotation = "controlplane.io/size";
    /// <summary>On the StatefulSet: how many times the backend started the instance's container (create, start, change, restart).</summary>
    public const string StartsAnnotation = "controlplane.io/starts";
    /// <summary>On the pod template: the spec's restart count; changing it rolls the pod, keeping its volume.</summary>
    public const string RestartsAnnotation = "controlplane.io/restarts";

    /// <summary>The instance Secret's key holding its access control file (<see cref="InstanceAccess"/>).</summary>
    public const string AccessControlKey = "acl";

    /// <summary>On the pod template: a digest of the access control file, so new credentials roll the pod.</summary>
    public const string CredentialsAnnotation = "controlplane.io/credentials";
    public const string ContainerName = "server";
    public const string PortName = "resp";

    public static string Namespace(KubernetesBackendOptions options, DeploymentSpec spec) =>
        Checked(options.NamespacePrefix + spec.TenantId, "tenant id", spec.TenantId);

    /// <summary>
    /// Whether a namespace's labels say it is this tenant's, made by the backend. The provisioner may write in any namespace
    /// with the tenant prefix, so the backend itself never applies into or deletes one it did not make for this tenant.
    /// </summary>
    public static bool IsTenantsNamespace(IDictionary<string, string>? labels, string tenantId) =>
        labels is not null
        && labels.TryGetValue(ManagedBy, out var managedBy) && managedBy == ManagedByValue
        && labels.TryGetValue(TenantLabel, out var tenant) && tenant == tenantId;

    public static DeploymentFailedException ForeignNamespace(string ns, string tenantId) => new(
        "kubernetes-foreign-namespace",
        $"Namespace {ns} exists but is not tenant {tenantId}'s (its labels {TenantLabel} and {ManagedBy} say otherwise), so the " +
        "provisioner neither places instances in it nor deletes it. Rename or remove that namespace, or choose another Provisioner:Kubernetes:NamespacePrefix.");

    /// <summary>The StatefulSet, Service and NetworkPolicy; the Secret and volume claim add a suffix.</summary>
    public static string Instance(DeploymentSpec spec) => Checked(spec.InstanceId, "instance id", spec.InstanceId, maxLength: 50);

    public static string Secret(string instance) => instance + "-credentials";

    public static string Claim(string instance) => instance + "-data";

    public static string Pod(string instance) => instance + "-0";

    public static string Tombstone(string instance) => instance + "-deleted";

    public static bool IsDnsLabel(string name) => name.Length <= 63 && DnsLabel().IsMatch(name);

    private static string Checked(string name, string what, string value, int maxLength = 63) =>
        name.Length <= maxLength && DnsLabel().IsMatch(name)
            ? name
            : throw new DeploymentFailedException(
                "invalid-name",
                $"The {what} '{value}' cannot name a Kubernetes object: use lower-case letters, digits and '-' (at most {maxLength} characters with the prefix).");

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    private static partial Regex DnsLabel();
}
