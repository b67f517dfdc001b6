using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Provisioner.Catalog;
using Provisioner.Deployments;
using Provisioner.Health;
using static Provisioner.Kubernetes.KubernetesNames;

namespace Provisioner.Kubernetes;

/// <summary>
/// Runs each hosted instance on a Kubernetes cluster: per tenant a namespace with a quota, default limits and a
/// default-deny network policy; per instance a one-replica StatefulSet of the catalog's image with its own volume claim,
/// Service, credentials Secret and a network policy that opens only its port. Every object is written with server-side
/// apply under one field manager, so a step repeated after a crash or a redelivery converges instead of duplicating.
/// </summary>
/// <remarks>
/// A StatefulSet rather than a Deployment: one replica with a stable name (<c>&lt;instance&gt;-0</c>) and the
/// at-most-one-pod guarantee a single-writer data directory needs (a Deployment's rolling update briefly runs two).
/// The claim is applied as an object of its own rather than from a claim template, so it can be sized, kept on stop and
/// deleted explicitly.
/// </remarks>
public sealed class KubernetesBackend(
    KubernetesCluster cluster,
    ProductCatalog catalog,
    IOptions<KubernetesBackendOptions> options,
    TimeProvider time,
    ILogger<KubernetesBackend> logger) : IDeploymentBackend
{
    public const string BackendName = "kubernetes";

    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan ApplyTimeout = TimeSpan.FromSeconds(60);

    private readonly KubernetesManifests _manifests = new(options.Value);

    public string Name => BackendName;

    private KubernetesBackendOptions Settings => options.Value;

    public async Task<DeploymentPlan> PlanAsync(DeploymentSpec desired, CancellationToken cancellationToken)
    {
        DeploymentTls.RefuseUnsupported(desired, Name);
        var now = await KubernetesInstance.ReadAsync(cluster, Settings, desired, cancellationToken);
        if (now.TenantNamespace is { } existing && !IsTenantsNamespace(existing.Metadata?.Labels, desired.TenantId))
        {
            throw ForeignNamespace(now.Namespace, desired.TenantId);
        }

        if (DeploymentGenerations.IsSuperseded(desired, now.RecordedGeneration, logger))
        {
            return DeploymentPlan.UpToDate;
        }

        return desired.Goal switch
        {
            DeploymentGoal.Running => await PlanRunningAsync(desired, now, cancellationToken),
            DeploymentGoal.Stopped => PlanStopped(desired, now),
            DeploymentGoal.Absent => PlanAbsent(desired, now),
            _ => throw new DeploymentFailedException("invalid-goal", $"Unknown deployment goal {desired.Goal}."),
        };
    }

    public async Task<ObservedDeployment> ObserveAsync(DeploymentSpec desired, CancellationToken cancellationToken)
    {
        var now = await KubernetesInstance.ReadAsync(cluster, Settings, desired, cancellationToken);
        return await ObserveAsync(desired, now, cancellationToken);
    }

    /// <summary>Removes a closed tenant's namespace, and with it whatever is left in it.</summary>
    public async Task CloseTenantAsync(DeploymentSpec anyInstanceOfTenant, CancellationToken cancellationToken)
    {
        var ns = KubernetesNames.Namespace(Settings, anyInstanceOfTenant);
        var existing = await cluster.ReadAsync("Namespace", null, ns, token => cluster.Client.CoreV1.ReadNamespaceAsync(ns, cancellationToken: token), cancellationToken);
        if (existing is not null && !IsTenantsNamespace(existing.Metadata?.Labels, anyInstanceOfTenant.TenantId))
        {
            throw ForeignNamespace(ns, anyInstanceOfTenant.TenantId);
        }

        await cluster.DeleteAsync("Namespace", null, ns, token => cluster.Client.CoreV1.DeleteNamespaceAsync(ns, cancellationToken: token), cancellationToken);
        await WaitUntilAsync(
            async token => await cluster.ReadAsync("Namespace", null, ns, t => cluster.Client.CoreV1.ReadNamespaceAsync(ns, cancellationToken: t), token) is null,
            Settings.DeleteTimeout, $"namespace {ns} to be removed", cancellationToken);
        logger.LogInformation("Removed namespace {Namespace} of tenant {TenantId}", ns, anyInstanceOfTenant.TenantId);
    }

    private async Task<DeploymentPlan> PlanRunningAsync(DeploymentSpec desired, KubernetesInstance now, CancellationToken cancellationToken)
    {
        var offering = Resolve(desired);
        var steps = new List<DeploymentStep>();
        var drift = DescribeMissing(now);
        if (!now.TenantNamespaceReady)
        {
            steps.Add(TenantStep(desired));
        }

        var rolls = now.StatefulSet is null || now.Replicas != 1 || now.DeployedProduct != desired.Product
            || now.DeployedVersion != desired.Version || now.DeployedSize != desired.Size || now.Restarts != desired.Restarts;
        if (rolls || steps.Count > 0 || NeedsApply(desired, now, offering))
        {
            var starts = now.Starts + (rolls ? 1 : 0);
            var name = !rolls ? $"Apply generation {desired.Generation}"
                : now.Replicas == 1 && now.Restarts != desired.Restarts && now.DeployedVersion == desired.Version && now.DeployedSize == desired.Size
                    ? $"Restart {Describe(offering)}"
                    : $"Start {Describe(offering)}";
            steps.Add(InstanceStep(name, desired, offering, replicas: 1, starts, now));
        }

        if (rolls || steps.Count > 0)
        {
            steps.Add(WaitStep(desired, offering));
            return new DeploymentPlan(steps, drift);
        }

        var observed = await ObserveAsync(desired, now, cancellationToken);
        return observed.Status == DeploymentStatus.Running
            ? new DeploymentPlan([], drift, observed)
            : new DeploymentPlan([WaitStep(desired, offering)], drift ?? observed.Detail);
    }

    private DeploymentPlan PlanStopped(DeploymentSpec desired, KubernetesInstance now)
    {
        var offering = Resolve(desired);
        var steps = new List<DeploymentStep>();
        if (!now.TenantNamespaceReady)
        {
            steps.Add(TenantStep(desired));
        }

        if (steps.Count > 0 || now.Replicas != 0 || NeedsApply(desired, now, offering))
        {
            steps.Add(InstanceStep("Scale to zero, keeping the volume", desired, offering, replicas: 0, now.Starts, now));
        }

        if (now.Pod is not null)
        {
            steps.Add(new DeploymentStep("Wait for the pod to stop", token => WaitForPodGoneAsync(desired, token), Settings.DeleteTimeout + TimeSpan.FromSeconds(15)));
        }

        return new DeploymentPlan(steps, DescribeMissing(now));
    }

    private DeploymentPlan PlanAbsent(DeploymentSpec desired, KubernetesInstance now)
    {
        if (now.NothingLeft)
        {
            return DeploymentPlan.UpToDate;
        }

        return new DeploymentPlan(
            [
                new DeploymentStep("Delete StatefulSet, Service, Secret, volume and network policy", token => DeleteInstanceAsync(desired, token), ApplyTimeout, PointOfNoReturn: true),
                new DeploymentStep("Wait until the pod and volume are gone", token => WaitForRemovalAsync(desired, token), Settings.DeleteTimeout + TimeSpan.FromSeconds(15)),
            ],
            Drift: null);
    }

    /// <summary>Whether an object besides the StatefulSet's pod template is missing or differs from what the spec makes.</summary>
    private static bool NeedsApply(DeploymentSpec desired, KubernetesInstance now, CatalogOffering offering) =>
        now.Service is null || now.Secret is null || now.Claim is null || now.Policy is null || !now.CredentialsMatch(desired)
        || now.ClaimSize != DiskFor(offering, now) || now.RecordedGeneration != desired.Generation;

    private DeploymentStep TenantStep(DeploymentSpec desired) => new(
        "Prepare the tenant's namespace (quota, limits, default-deny network policy)",
        async token =>
        {
            var core = cluster.Client.CoreV1;
            var ns = KubernetesNames.Namespace(Settings, desired);
            await cluster.ApplyAsync(_manifests.TenantNamespace(desired), (body, manager, force, t) => core.PatchNamespaceAsync(body, ns, fieldManager: manager, force: force, cancellationToken: t), token);
            await cluster.ApplyAsync(_manifests.TenantQuota(desired), (body, manager, force, t) => core.PatchNamespacedResourceQuotaAsync(body, "instances", ns, fieldManager: manager, force: force, cancellationToken: t), token);
            await cluster.ApplyAsync(_manifests.TenantLimits(desired), (body, manager, force, t) => core.PatchNamespacedLimitRangeAsync(body, "defaults", ns, fieldManager: manager, force: force, cancellationToken: t), token);
            await cluster.ApplyAsync(_manifests.TenantDefaultDeny(desired), (body, manager, force, t) => cluster.Client.NetworkingV1.PatchNamespacedNetworkPolicyAsync(body, "default-deny", ns, fieldManager: manager, force: force, cancellationToken: t), token);
        },
        ApplyTimeout);

    private DeploymentStep InstanceStep(string name, DeploymentSpec desired, CatalogOffering offering, int replicas, long starts, KubernetesInstance now) => new(
        name,
        async token =>
        {
            var core = cluster.Client.CoreV1;
            var ns = now.Namespace;
            var instance = now.Name;
            var container = offering.Definition.Container!;
            var volume = _manifests.Volume(desired, offering.SizeDefinition);
            volume.Spec.Resources.Requests["storage"] = new ResourceQuantity(DiskFor(offering, now));
            // The Secret and the volume first: the pod refers to both, and starts only once they exist.
            await cluster.ApplyAsync(_manifests.Credentials(desired), (body, manager, force, t) => core.PatchNamespacedSecretAsync(body, KubernetesNames.Secret(instance), ns, fieldManager: manager, force: force, cancellationToken: t), token);
            await cluster.ApplyAsync(volume, (body, manager, force, t) => core.PatchNamespacedPersistentVolumeClaimAsync(body, Claim(instance), ns, fieldManager: manager, force: force, cancellationToken: t), token);
            await cluster.ApplyAsync(_manifests.Service(desired, container), (body, manager, force, t) => core.PatchNamespacedServiceAsync(body, instance, ns, fieldManager: manager, force: force, cancellationToken: t), token);
            await cluster.ApplyAsync(_manifests.InstanceIngress(desired, container), (body, manager, force, t) => cluster.Client.NetworkingV1.PatchNamespacedNetworkPolicyAsync(body, instance, ns, fieldManager: manager, force: force, cancellationToken: t), token);
            await cluster.ApplyAsync(_manifests.StatefulSet(desired, offering, replicas, starts), (body, manager, force, t) => cluster.Client.AppsV1.PatchNamespacedStatefulSetAsync(body, instance, ns, fieldManager: manager, force: force, cancellationToken: t), token);
            logger.LogInformation(
                "Applied instance {InstanceId} ({Product} {Version}, {Size}) to namespace {Namespace} with {Replicas} replica(s), generation {Generation}",
                desired.InstanceId, desired.Product, desired.Version, desired.Size, ns, replicas, desired.Generation);
        },
        ApplyTimeout);

    private DeploymentStep WaitStep(DeploymentSpec desired, CatalogOffering offering) => new(
        "Wait for the pod to be ready and answer an authenticated PING",
        token => WaitUntilAnsweringAsync(desired, offering, token),
        TimeSpan.FromSeconds(offering.Definition.Container!.StartupTimeoutSeconds + 15));

    private async Task WaitUntilAnsweringAsync(DeploymentSpec desired, CatalogOffering offering, CancellationToken cancellationToken)
    {
        var timeout = TimeSpan.FromSeconds(offering.Definition.Container!.StartupTimeoutSeconds);
        var started = time.GetTimestamp();
        while (true)
        {
            var now = await KubernetesInstance.ReadAsync(cluster, Settings, desired, cancellationToken);
            if (now.FatalContainerState is { } fatal)
            {
                throw new DeploymentFailedException(
                    "container-failed",
                    $"{Describe(offering)} cannot start in pod {now.Namespace}/{Pod(now.Name)}: {fatal}. Check the catalog's image " +
                    $"({offering.VersionDefinition.Image}) and that the cluster can pull it; `kubectl -n {now.Namespace} describe pod {Pod(now.Name)}` tells more.");
            }

            var observed = await ObserveAsync(desired, now, cancellationToken);
            if (observed.Status == DeploymentStatus.Running && observed.Endpoint is not null)
            {
                logger.LogInformation(
                    "Instance {InstanceId} answers at {ProbeEndpoint} {ElapsedMs:0} ms after the wait began",
                    desired.InstanceId, observed.ProbeEndpoint, time.GetElapsedTime(started).TotalMilliseconds);
                return;
            }

            if (time.GetElapsedTime(started) > timeout)
            {
                throw new DeploymentFailedException(
                    "startup-timeout",
                    $"{Describe(offering)} did not answer an authenticated PING within {timeout.TotalSeconds:0} s. {observed.Detail} " +
                    $"`kubectl -n {now.Namespace} describe pod {Pod(now.Name)}` and its log tell why.");
            }

            await Task.Delay(Settings.PollInterval, time, cancellationToken);
        }
    }

    private async Task<ObservedDeployment> ObserveAsync(DeploymentSpec desired, KubernetesInstance now, CancellationToken cancellationToken)
    {
        if (now.StatefulSet is null)
        {
            return ObservedDeployment.Absent with { Detail = now.Claim is null ? null : "The StatefulSet is missing; its volume is kept." };
        }

        var observed = new ObservedDeployment
        {
            Status = DeploymentStatus.Stopped,
            Endpoint = now.CustomerEndpoint(Settings),
            ProbeEndpoint = now.ProbeEndpoint,
            Version = now.DeployedVersion,
            Size = now.DeployedSize,
            Generation = now.RecordedGeneration ?? 0,
            Restarts = now.Restarts,
            ProcessStarts = now.ProcessStarts,
        };
        if (now.Replicas == 0)
        {
            return observed with { Detail = "Scaled to zero: the volume and the Service are kept." };
        }

        if (!now.PodReady || now.ProbeEndpoint is not { } probe)
        {
            return observed with { Status = DeploymentStatus.Starting, Health = DeploymentHealth.Unhealthy, Detail = now.DescribePod() };
        }

        var ping = await RespPingProbe.PingAsync(probe.Host, probe.Port, InstanceAccess.PlatformUser, desired.PlatformPassword.Value, ProbeTimeout, cancellationToken);
        var detail = observed.Endpoint is null ? $"{ping.Detail} The load balancer has no address yet." : ping.Detail;
        return observed with
        {
            Status = ping.Answered && observed.Endpoint is not null ? DeploymentStatus.Running : DeploymentStatus.Starting,
            Health = ping.Answered ? DeploymentHealth.Healthy : DeploymentHealth.Unhealthy,
            ProbeLatency = ping.Answered ? ping.Latency : null,
            Detail = detail,
        };
    }

    private async Task DeleteInstanceAsync(DeploymentSpec desired, CancellationToken cancellationToken)
    {
        var core = cluster.Client.CoreV1;
        var ns = KubernetesNames.Namespace(Settings, desired);
        var name = Instance(desired);
        // The tombstone goes first: once the StatefulSet is gone it is what keeps a late command from recreating the instance.
        var namespaceExists = await cluster.ReadAsync("Namespace", null, ns, token => core.ReadNamespaceAsync(ns, cancellationToken: token), cancellationToken) is not null;
        if (namespaceExists)
        {
            await cluster.ApplyAsync(_manifests.Tombstone(desired), (body, manager, force, t) => core.PatchNamespacedConfigMapAsync(body, KubernetesNames.Tombstone(name), ns, fieldManager: manager, force: force, cancellationToken: t), cancellationToken);
        }

        var background = new V1DeleteOptions { PropagationPolicy = "Background" };
        await cluster.DeleteAsync("StatefulSet", ns, name, token => cluster.Client.AppsV1.DeleteNamespacedStatefulSetAsync(name, ns, background, cancellationToken: token), cancellationToken);
        await cluster.DeleteAsync("NetworkPolicy", ns, name, token => cluster.Client.NetworkingV1.DeleteNamespacedNetworkPolicyAsync(name, ns, cancellationToken: token), cancellationToken);
        await cluster.DeleteAsync("Service", ns, name, token => core.DeleteNamespacedServiceAsync(name, ns, cancellationToken: token), cancellationToken);
        await cluster.DeleteAsync("Secret", ns, KubernetesNames.Secret(name), token => core.DeleteNamespacedSecretAsync(KubernetesNames.Secret(name), ns, cancellationToken: token), cancellationToken);
        await cluster.DeleteAsync("PersistentVolumeClaim", ns, Claim(name), token => core.DeleteNamespacedPersistentVolumeClaimAsync(Claim(name), ns, cancellationToken: token), cancellationToken);
        logger.LogInformation("Deleted the objects of instance {InstanceId} in namespace {Namespace}", desired.InstanceId, ns);
    }

    private Task WaitForPodGoneAsync(DeploymentSpec desired, CancellationToken cancellationToken) =>
        WaitUntilAsync(async token => (await KubernetesInstance.ReadAsync(cluster, Settings, desired, token)).Pod is null,
            Settings.DeleteTimeout, $"the pod of instance {desired.InstanceId} to stop", cancellationToken);

    private Task WaitForRemovalAsync(DeploymentSpec desired, CancellationToken cancellationToken) =>
        WaitUntilAsync(async token => (await KubernetesInstance.ReadAsync(cluster, Settings, desired, token)).NothingLeft,
            Settings.DeleteTimeout, $"the objects of instance {desired.InstanceId} to be removed", cancellationToken);

    private async Task WaitUntilAsync(Func<CancellationToken, Task<bool>> condition, TimeSpan timeout, string what, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        while (!await condition(cancellationToken))
        {
            if (time.GetElapsedTime(started) > timeout)
            {
                throw new DeploymentFailedException(
                    "kubernetes-timeout",
                    $"Waited {timeout.TotalSeconds:0} s for {what}. A finalizer or a stuck node may hold it: `kubectl get all,pvc -n <namespace>` shows what is left.");
            }

            await Task.Delay(Settings.PollInterval, time, cancellationToken);
        }
    }

    /// <summary>A volume only grows: a smaller size keeps the larger claim, which Kubernetes cannot shrink.</summary>
    private static string DiskFor(CatalogOffering offering, KubernetesInstance now)
    {
        var wanted = offering.SizeDefinition.DiskGb;
        var current = now.ClaimSize is { } size && size.EndsWith("Gi", StringComparison.Ordinal)
            && int.TryParse(size.AsSpan(0, size.Length - 2), System.Globalization.CultureInfo.InvariantCulture, out var gigabytes) ? gigabytes : 0;
        return $"{Math.Max(wanted, current)}Gi";
    }

    private static string? DescribeMissing(KubernetesInstance now)
    {
        if (now.StatefulSet is null)
        {
            return now.Claim is null ? null : "The StatefulSet is missing; its volume is still there.";
        }

        var missing = new[] { ("Service", now.Service is null), ("Secret", now.Secret is null), ("volume claim", now.Claim is null), ("network policy", now.Policy is null) }
            .Where(pair => pair.Item2).Select(pair => pair.Item1).ToList();
        return missing.Count == 0 ? null : $"The instance's {string.Join(", ", missing)} is missing from namespace {now.Namespace}.";
    }

    private CatalogOffering Resolve(DeploymentSpec desired) => CloudOfferings.Resolve(catalog, desired, "Kubernetes");

    private static string Describe(CatalogOffering offering) => CloudOfferings.Describe(offering);
}
