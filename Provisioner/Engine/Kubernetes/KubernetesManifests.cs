using System.Globalization;
using System.Text;
using k8s.Models;
using Provisioner.Catalog;
using Provisioner.Deployments;
using static Provisioner.Kubernetes.KubernetesNames;

namespace Provisioner.Kubernetes;

/// <summary>
/// The objects the backend applies, whole: server-side apply makes the cluster match each one, so the same
/// object applied again (a retry, a redelivered command) changes nothing.
/// </summary>
public sealed class KubernetesManifests(KubernetesBackendOptions options)
{
    public V1Namespace TenantNamespace(DeploymentSpec spec) => new()
    {
        ApiVersion = "v1",
        Kind = "Namespace",
        Metadata = new V1ObjectMeta
        {
            Name = Namespace(options, spec),
            Labels = new Dictionary<string, string> { [ManagedBy] = ManagedByValue, [TenantLabel] = spec.TenantId },
        },
    };

    public V1ResourceQuota TenantQuota(DeploymentSpec spec) => new()
    {
        ApiVersion = "v1",
        Kind = "ResourceQuota",
        Metadata = Meta("instances", spec),
        Spec = new V1ResourceQuotaSpec
        {
            Hard = new Dictionary<string, ResourceQuantity>
            {
                ["pods"] = new(options.Quota.Pods.ToString(CultureInfo.InvariantCulture)),
                ["persistentvolumeclaims"] = new(options.Quota.Pods.ToString(CultureInfo.InvariantCulture)),
                ["requests.cpu"] = Cpu(options.Quota.CpuMillicores),
                ["limits.cpu"] = Cpu(options.Quota.CpuMillicores),
                ["requests.memory"] = Mebibytes(options.Quota.MemoryMb),
                ["limits.memory"] = Mebibytes(options.Quota.MemoryMb),
                ["requests.storage"] = new($"{options.Quota.StorageGb}Gi"),
                ["services.loadbalancers"] = new(options.ServiceType == "LoadBalancer" ? options.Quota.Pods.ToString(CultureInfo.InvariantCulture) : "0"),
                ["services.nodeports"] = new("0"),
            },
        },
    };

    /// <summary>Defaults for anything in the namespace that names no resources, so nothing there runs unbounded.</summary>
    public V1LimitRange TenantLimits(DeploymentSpec spec) => new()
    {
        ApiVersion = "v1",
        Kind = "LimitRange",
        Metadata = Meta("defaults", spec),
        Spec = new V1LimitRangeSpec
        {
            Limits =
            [
                new V1LimitRangeItem
                {
                    Type = "Container",
                    DefaultProperty = new Dictionary<string, ResourceQuantity> { ["cpu"] = Cpu(250), ["memory"] = Mebibytes(256) },
                    DefaultRequest = new Dictionary<string, ResourceQuantity> { ["cpu"] = Cpu(250), ["memory"] = Mebibytes(256) },
                },
            ],
        },
    };

    /// <summary>Nothing reaches a tenant's pods, and they reach nothing, unless a policy of an instance allows it.</summary>
    public V1NetworkPolicy TenantDefaultDeny(DeploymentSpec spec) => new()
    {
        ApiVersion = "networking.k8s.io/v1",
        Kind = "NetworkPolicy",
        Metadata = Meta("default-deny", spec),
        Spec = new V1NetworkPolicySpec { PodSelector = new V1LabelSelector(), PolicyTypes = ["Ingress", "Egress"] },
    };

    /// <summary>An instance's one open door: its port, from the configured ingress and the platform's probes.</summary>
    public V1NetworkPolicy InstanceIngress(DeploymentSpec spec, ContainerTemplate container)
    {
        var selectors = options.IngressNamespaces.Select(Named)
            .Append(options.IngressNamespaceLabels)
            .Append(options.PlatformNamespace is { Length: > 0 } platform ? Named(platform) : [])
            .Append(options.PlatformNamespaceLabels)
            .Where(labels => labels.Count > 0);
        var sources = selectors
            .Select(labels => new V1NetworkPolicyPeer { NamespaceSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string>(labels) } })
            .ToList();

        if (options.IngressCidr is { } cidr)
        {
            sources.Add(new V1NetworkPolicyPeer { IpBlock = new V1IPBlock { Cidr = cidr } });
        }

        return new V1NetworkPolicy
        {
            ApiVersion = "networking.k8s.io/v1",
            Kind = "NetworkPolicy",
            Metadata = Meta(Instance(spec), spec),
            Spec = new V1NetworkPolicySpec
            {
                PodSelector = new V1LabelSelector { MatchLabels = Selector(spec) },
                PolicyTypes = ["Ingress"],
                Ingress = [new V1NetworkPolicyIngressRule { FromProperty = sources, Ports = [new V1NetworkPolicyPort { Port = container.Port, Protocol = "TCP" }] }],
            },
        };
    }

    public V1Secret Credentials(DeploymentSpec spec) => new()
    {
        ApiVersion = "v1",
        Kind = "Secret",
        Metadata = Meta(Secret(Instance(spec)), spec),
        Type = "Opaque",
        Data = new Dictionary<string, byte[]> { [AccessControlKey] = Encoding.UTF8.GetBytes(InstanceAccess.AccessControlFile(spec)) },
    };

    public V1PersistentVolumeClaim Volume(DeploymentSpec spec, ProductSize size) => new()
    {
        ApiVersion = "v1",
        Kind = "PersistentVolumeClaim",
        Metadata = Meta(Claim(Instance(spec)), spec),
        Spec = new V1PersistentVolumeClaimSpec
        {
            AccessModes = ["ReadWriteOnce"],
            StorageClassName = string.IsNullOrEmpty(options.StorageClassName) ? null : options.StorageClassName,
            Resources = new V1VolumeResourceRequirements
            {
                Requests = new Dictionary<string, ResourceQuantity> { ["storage"] = new($"{size.DiskGb}Gi") },
            },
        },
    };

    public V1Service Service(DeploymentSpec spec, ContainerTemplate container) => new()
    {
        ApiVersion = "v1",
        Kind = "Service",
        Metadata = Meta(Instance(spec), spec),
        Spec = new V1ServiceSpec
        {
            Type = options.ServiceType,
            Selector = Selector(spec),
            Ports = [new V1ServicePort { Name = PortName, Port = container.Port, TargetPort = PortName, Protocol = "TCP" }],
        },
    };

    /// <param name="starts">What the backend's starts count will be once this is applied.</param>
    public V1StatefulSet StatefulSet(DeploymentSpec spec, CatalogOffering offering, int replicas, long starts)
    {
        var container = offering.Definition.Container!;
        var size = offering.SizeDefinition;
        var name = Instance(spec);
        var resources = new Dictionary<string, ResourceQuantity>
        {
            ["cpu"] = Cpu(size.CpuMillicores),
            ["memory"] = Mebibytes(size.MemoryMb + options.MemoryOverheadMb),
        };
        var meta = Meta(name, spec);
        meta.Annotations = new Dictionary<string, string>
        {
            [GenerationAnnotation] = spec.Generation.ToString(CultureInfo.InvariantCulture),
            [ProductAnnotation] = spec.Product,
            [VersionAnnotation] = spec.Version,
            [SizeAnnotation] = spec.Size,
            [StartsAnnotation] = starts.ToString(CultureInfo.InvariantCulture),
        };
        return new V1StatefulSet
        {
            ApiVersion = "apps/v1",
            Kind = "StatefulSet",
            Metadata = meta,
            Spec = new V1StatefulSetSpec
            {
                Replicas = replicas,
                ServiceName = name,
                Selector = new V1LabelSelector { MatchLabels = Selector(spec) },
                UpdateStrategy = new V1StatefulSetUpdateStrategy { Type = "RollingUpdate" },
                Template = new V1PodTemplateSpec
                {
                    Metadata = new V1ObjectMeta
                    {
                        Labels = Labels(spec),
                        Annotations = new Dictionary<string, string>
                        {
                            [RestartsAnnotation] = spec.Restarts.ToString(CultureInfo.InvariantCulture),
                            [CredentialsAnnotation] = InstanceAccess.Digest(spec),
                        },
                    },
                    Spec = new V1PodSpec
                    {
                        AutomountServiceAccountToken = false,
                        EnableServiceLinks = false,
                        TerminationGracePeriodSeconds = 30,
                        SecurityContext = new V1PodSecurityContext
                        {
                            RunAsNonRoot = true,
                            RunAsUser = container.RunAsUser,
                            RunAsGroup = container.RunAsUser,
                            FsGroup = container.RunAsUser,
                            SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
                        },
                        Containers =
                        [
                            new V1Container
                            {
                                Name = ContainerName,
                                Image = offering.VersionDefinition.Image,
                                Command = container.Command.Count > 0 ? [.. container.Command] : null,
                                Args = [.. ContainerArguments.Render(offering)],
                                Ports = [new V1ContainerPort { Name = PortName, ContainerPort = container.Port, Protocol = "TCP" }],
                                Env =
                                [
                                    new V1EnvVar
                                    {
                                        Name = container.AccessControlEnvironmentVariable,
                                        ValueFrom = new V1EnvVarSource { SecretKeyRef = new V1SecretKeySelector { Name = Secret(name), Key = AccessControlKey } },
                                    },
                                ],
                                Resources = new V1ResourceRequirements { Requests = resources, Limits = new Dictionary<string, ResourceQuantity>(resources) },
                                ReadinessProbe = new V1Probe { TcpSocket = new V1TCPSocketAction { Port = PortName }, PeriodSeconds = 2, FailureThreshold = 3 },
                                LivenessProbe = new V1Probe { TcpSocket = new V1TCPSocketAction { Port = PortName }, InitialDelaySeconds = 30, PeriodSeconds = 10, FailureThreshold = 6 },
                                SecurityContext = new V1SecurityContext
                                {
                                    AllowPrivilegeEscalation = false,
                                    ReadOnlyRootFilesystem = true,
                                    Capabilities = new V1Capabilities { Drop = ["ALL"] },
                                },
                                VolumeMounts =
                                [
                                    new V1VolumeMount { Name = "data", MountPath = container.DataPath },
                                    new V1VolumeMount { Name = "tmp", MountPath = "/tmp" },
                                ],
                            },
                        ],
                        Volumes =
                        [
                            new V1Volume { Name = "data", PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = Claim(name) } },
                            new V1Volume { Name = "tmp", EmptyDir = new V1EmptyDirVolumeSource { SizeLimit = Mebibytes(64) } },
                        ],
                    },
                },
            },
        };
    }

    /// <summary>What stays of a deleted instance: its last generation, so a late, older command cannot bring it back.</summary>
    public V1ConfigMap Tombstone(DeploymentSpec spec) => new()
    {
        ApiVersion = "v1",
        Kind = "ConfigMap",
        Metadata = Meta(KubernetesNames.Tombstone(Instance(spec)), spec),
        Data = new Dictionary<string, string> { ["generation"] = spec.Generation.ToString(CultureInfo.InvariantCulture) },
    };

    /// <summary>A namespace by name: every namespace carries its name in this label.</summary>
    private static Dictionary<string, string> Named(string ns) => new() { ["kubernetes.io/metadata.name"] = ns };

    private V1ObjectMeta Meta(string name, DeploymentSpec spec) => new()
    {
        Name = name,
        NamespaceProperty = Namespace(options, spec),
        Labels = name.StartsWith(spec.InstanceId, StringComparison.Ordinal) ? Labels(spec) : TenantLabels(spec),
    };

    private static Dictionary<string, string> TenantLabels(DeploymentSpec spec) => new()
    {
        [ManagedBy] = ManagedByValue,
        [TenantLabel] = spec.TenantId,
    };

    private static Dictionary<string, string> Labels(DeploymentSpec spec) => new(TenantLabels(spec))
    {
        [InstanceLabel] = spec.InstanceId,
        [ProductLabel] = spec.Product,
    };

    private static Dictionary<string, string> Selector(DeploymentSpec spec) => new() { [InstanceLabel] = spec.InstanceId };

    private static ResourceQuantity Cpu(int millicores) => new($"{millicores}m");

    private static ResourceQuantity Mebibytes(int megabytes) => new($"{megabytes}Mi");
}
