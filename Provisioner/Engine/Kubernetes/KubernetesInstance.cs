using System.Globalization;
using System.Text;
using k8s;
using k8s.Models;
using Provisioner.Deployments;
using static Provisioner.Kubernetes.KubernetesNames;

namespace Provisioner.Kubernetes;

/// <summary>Everything that exists for one instance on the cluster, read in one go.</summary>
internal sealed record KubernetesInstance(
    string Namespace,
    string Name,
    V1Namespace? TenantNamespace,
    V1StatefulSet? StatefulSet,
    V1Service? Service,
    V1Secret? Secret,
    V1PersistentVolumeClaim? Claim,
    V1NetworkPolicy? Policy,
    V1ConfigMap? Tombstone,
    V1Pod? Pod)
{
    private static readonly string[] s_fatalWaitingReasons =
        ["ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff"];

    public static async Task<KubernetesInstance> ReadAsync(
        KubernetesCluster cluster, KubernetesBackendOptions options, DeploymentSpec spec, CancellationToken cancellationToken)
    {
        var ns = KubernetesNames.Namespace(options, spec);
        var name = Instance(spec);
        var core = cluster.Client.CoreV1;
        var tenantNamespace = cluster.ReadAsync("Namespace", null, ns, token => core.ReadNamespaceAsync(ns, cancellationToken: token), cancellationToken);
        var statefulSet = cluster.ReadAsync("StatefulSet", ns, name, token => cluster.Client.AppsV1.ReadNamespacedStatefulSetAsync(name, ns, cancellationToken: token), cancellationToken);
        var service = cluster.ReadAsync("Service", ns, name, token => core.ReadNamespacedServiceAsync(name, ns, cancellationToken: token), cancellationToken);
        var secret = cluster.ReadAsync("Secret", ns, KubernetesNames.Secret(name), token => core.ReadNamespacedSecretAsync(KubernetesNames.Secret(name), ns, cancellationToken: token), cancellationToken);
        var claim = cluster.ReadAsync("PersistentVolumeClaim", ns, KubernetesNames.Claim(name), token => core.ReadNamespacedPersistentVolumeClaimAsync(KubernetesNames.Claim(name), ns, cancellationToken: token), cancellationToken);
        var policy = cluster.ReadAsync("NetworkPolicy", ns, name, token => cluster.Client.NetworkingV1.ReadNamespacedNetworkPolicyAsync(name, ns, cancellationToken: token), cancellationToken);
        var tombstone = cluster.ReadAsync("ConfigMap", ns, KubernetesNames.Tombstone(name), token => core.ReadNamespacedConfigMapAsync(KubernetesNames.Tombstone(name), ns, cancellationToken: token), cancellationToken);
        var pod = cluster.ReadAsync("Pod", ns, KubernetesNames.Pod(name), token => core.ReadNamespacedPodAsync(KubernetesNames.Pod(name), ns, cancellationToken: token), cancellationToken);
        await Task.WhenAll(tenantNamespace, statefulSet, service, secret, claim, policy, tombstone, pod);
        return new KubernetesInstance(ns, name, tenantNamespace.Result, statefulSet.Result, service.Result, secret.Result, claim.Result, policy.Result, tombstone.Result, pod.Result);
    }

    public bool NothingLeft => StatefulSet is null && Service is null && Secret is null && Claim is null && Policy is null && Pod is null;

    /// <summary>The newest generation anything here was brought to, so an older command is recognised as late.</summary>
    public long? RecordedGeneration => new[] { Annotation(StatefulSet?.Metadata, GenerationAnnotation), Value(Tombstone?.Data, "generation") }
        .Select(value => long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var generation) ? generation : (long?)null)
        .Max();

    public bool TenantNamespaceReady => TenantNamespace is { Status.Phase: not "Terminating" };

    public int Replicas => StatefulSet?.Spec?.Replicas ?? 0;

    public string? DeployedProduct => Annotation(StatefulSet?.Metadata, ProductAnnotation);

    public string? DeployedVersion => Annotation(StatefulSet?.Metadata, VersionAnnotation);

    public string? DeployedSize => Annotation(StatefulSet?.Metadata, SizeAnnotation);

    public long Starts => Number(Annotation(StatefulSet?.Metadata, StartsAnnotation));

    public long Restarts => Number(Annotation(StatefulSet?.Spec?.Template?.Metadata, RestartsAnnotation));

    /// <summary>Starts the backend made plus the restarts the kubelet made of the current pod's container.</summary>
    public long ProcessStarts => Starts + (Pod?.Status?.ContainerStatuses?.FirstOrDefault(status => status.Name == ContainerName)?.RestartCount ?? 0);

    /// <summary>The Secret holds the spec's access control file and the pod template was rolled for it.</summary>
    public bool CredentialsMatch(DeploymentSpec spec) =>
        Secret?.Data?.TryGetValue(AccessControlKey, out var stored) == true
        && stored.AsSpan().SequenceEqual(Encoding.UTF8.GetBytes(InstanceAccess.AccessControlFile(spec)))
        && Annotation(StatefulSet?.Spec?.Template?.Metadata, CredentialsAnnotation) == InstanceAccess.Digest(spec);

    public string? ClaimSize => Claim?.Spec?.Resources?.Requests?.TryGetValue("storage", out var storage) == true ? storage.ToString() : null;

    /// <summary>The pod runs the StatefulSet's current template (a roll after a change has happened) and reports ready with an address.</summary>
    public bool PodReady =>
        Pod is { Status.PodIP: { Length: > 0 } } pod
        && pod.Metadata.DeletionTimestamp is null
        && pod.Status.Conditions?.Any(condition => condition.Type == "Ready" && condition.Status == "True") == true
        && StatefulSet is { Status: { } status, Metadata: { } meta }
        && status.ObservedGeneration >= meta.Generation
        && (status.UpdateRevision is null || Value(pod.Metadata.Labels, "controller-revision-hash") == status.UpdateRevision);

    /// <summary>Why the container cannot start, when the kubelet says so for good (a bad image, a crash loop); null otherwise.</summary>
    public string? FatalContainerState =>
        Pod?.Status?.ContainerStatuses?.FirstOrDefault(status => status.Name == ContainerName) is { State.Waiting: { } waiting } status
        && s_fatalWaitingReasons.Contains(waiting.Reason, StringComparer.Ordinal)
        // One crash is repaired by the kubelet's restart; a container that keeps crashing will not come up by waiting.
        && (waiting.Reason != "CrashLoopBackOff" || status.RestartCount >= 3)
            ? $"{waiting.Reason}: {waiting.Message}"
            : null;

    public string DescribePod() => Pod switch
    {
        null => $"Pod {Namespace}/{KubernetesNames.Pod(Name)} does not exist yet.",
        { Status: var status } => $"Pod {Namespace}/{KubernetesNames.Pod(Name)} is {status?.Phase ?? "Pending"}" +
            (status?.ContainerStatuses?.FirstOrDefault()?.State?.Waiting is { } waiting ? $" ({waiting.Reason}: {waiting.Message})." : "."),
    };

    /// <summary>What customers connect to: the Service's DNS name in the cluster, or its load balancer's address.</summary>
    public Endpoint? CustomerEndpoint(KubernetesBackendOptions options)
    {
        if (Service?.Spec?.Ports?.FirstOrDefault() is not { } port)
        {
            return null;
        }

        if (Service.Spec.Type == "LoadBalancer")
        {
            return Service.Status?.LoadBalancer?.Ingress?.FirstOrDefault() is { } ingress && (ingress.Ip ?? ingress.Hostname) is { } address
                ? new Endpoint { Host = address, Port = port.Port }
                : null;
        }

        return new Endpoint { Host = $"{Name}.{Namespace}.svc.{options.ClusterDomain}", Port = port.Port };
    }

    /// <summary>Where the platform's probes reach the server: the pod itself, so a probe never depends on the customers' path.</summary>
    public Endpoint? ProbeEndpoint => Pod?.Status?.PodIP is { Length: > 0 } ip
        && Pod.Spec?.Containers?.FirstOrDefault(container => container.Name == ContainerName)?.Ports?.FirstOrDefault() is { } port
            ? new Endpoint { Host = ip, Port = port.ContainerPort }
            : null;

    private static string? Annotation(V1ObjectMeta? metadata, string key) => Value(metadata?.Annotations, key);

    private static string? Value(IDictionary<string, string>? values, string key) => values is not null && values.TryGetValue(key, out var value) ? value : null;

    private static long Number(string? value) => long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var number) ? number : 0;
}
