using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace FakeKubernetes;

/// <summary>
/// The control loops the backend relies on, as kube-controller-manager runs them: the StatefulSet controller (pods
/// <c>NAME-0..N-1</c> from the template, a rolling update that replaces a pod whose revision is old, scale down, status),
/// the garbage collector (pods whose StatefulSet is gone), claim protection (a claim in use stays until its pod is gone),
/// namespace termination (after <see cref="NamespaceTerminationDelay"/>, everything in it goes) and a load balancer
/// controller that gives LoadBalancer Services an address after <see cref="LoadBalancerDelay"/>.
/// </summary>
public sealed class Controllers(ObjectStore store, Kubelet kubelet) : IAsyncDisposable
{
    private const string Manager = "kube-controller-manager";
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly ConcurrentDictionary<ObjectKey, DateTimeOffset> _seen = new();
    private Task _loop = Task.CompletedTask;

    public TimeSpan NamespaceTerminationDelay { get; set; } = TimeSpan.FromMilliseconds(300);

    public TimeSpan LoadBalancerDelay { get; set; } = TimeSpan.FromMilliseconds(300);

    /// <summary>Refusals a controller met (e.g. a pod the quota does not allow), as Kubernetes records events.</summary>
    public ConcurrentQueue<string> Events { get; } = new();

    public void Start()
    {
        store.Changed += () => _wake.Release();
        _loop = Task.Run(async () =>
        {
            while (!_stopping.IsCancellationRequested)
            {
                try
                {
                    Reconcile();
                    kubelet.Sync();
                }
                catch (Exception exception)
                {
                    // A fake's own fault must show in the test's output, not stop the loops silently.
                    Events.Enqueue(exception.ToString());
                }

                try
                {
                    await _wake.WaitAsync(TimeSpan.FromMilliseconds(100), _stopping.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        });
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        await _loop;
        _stopping.Dispose();
    }

    private void Reconcile()
    {
        StatefulSets();
        CollectGarbage();
        ProtectClaims();
        TerminateNamespaces();
        AssignLoadBalancers();
    }

    private void StatefulSets()
    {
        var podType = ResourceType.Of("Pod");
        foreach (var set in store.List(ResourceType.Of("StatefulSet")))
        {
            var metadata = set["metadata"]!;
            var (ns, name, uid) = ((string)metadata["namespace"]!, (string)metadata["name"]!, (string)metadata["uid"]!);
            if (metadata["deletionTimestamp"] is not null)
            {
                continue;
            }

            var template = set["spec"]!["template"]!.AsObject();
            var revision = $"{name}-{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(template.ToJsonString())))[..10]}";
            var replicas = (int?)set["spec"]!["replicas"] ?? 1;
            var pods = store.List(podType, ns).Where(pod => OwnerUid(pod) == uid).ToList();
            for (var ordinal = 0; ordinal < replicas; ordinal++)
            {
                var podName = $"{name}-{ordinal}";
                var pod = pods.FirstOrDefault(candidate => (string?)candidate["metadata"]!["name"] == podName);
                if (pod is null)
                {
                    CreatePod(set, template, ns, podName, revision);
                }
                else if ((string?)pod["metadata"]!["labels"]?["controller-revision-hash"] != revision && pod["metadata"]!["deletionTimestamp"] is null)
                {
                    store.Delete(new ObjectKey(podType, ns, podName));
                }
            }

            foreach (var extra in pods.Where(pod => Ordinal(pod) >= replicas && pod["metadata"]!["deletionTimestamp"] is null))
            {
                store.Delete(new ObjectKey(podType, ns, (string)extra["metadata"]!["name"]!));
            }

            var live = store.List(podType, ns).Where(pod => OwnerUid(pod) == uid).ToList();
            var updated = live.Count(pod => (string?)pod["metadata"]!["labels"]?["controller-revision-hash"] == revision);
            var ready = live.Count(Kubelet.IsReady);
            var status = new JsonObject
            {
                ["observedGeneration"] = (long?)metadata["generation"],
                ["replicas"] = live.Count,
                ["readyReplicas"] = ready,
                ["availableReplicas"] = ready,
                ["currentReplicas"] = updated,
                ["updatedReplicas"] = updated,
                ["currentRevision"] = updated == live.Count ? revision : (string?)set["status"]?["currentRevision"] ?? revision,
                ["updateRevision"] = revision,
            };
            store.Update(new ObjectKey(ResourceType.Of("StatefulSet"), ns, name), current =>
            {
                if (JsonNode.DeepEquals(current["status"], status))
                {
                    return false;
                }

                current["status"] = status;
                return true;
            });
        }
    }

    private void CreatePod(JsonObject set, JsonObject template, string ns, string podName, string revision)
    {
        var metadata = (template["metadata"]?.DeepClone() as JsonObject) ?? [];
        var labels = (metadata["labels"] as JsonObject) ?? [];
        labels["controller-revision-hash"] = revision;
        labels["statefulset.kubernetes.io/pod-name"] = podName;
        metadata["labels"] = labels;
        metadata["name"] = podName;
        metadata["ownerReferences"] = new JsonArray(new JsonObject
        {
            ["apiVersion"] = "apps/v1",
            ["kind"] = "StatefulSet",
            ["name"] = (string?)set["metadata"]!["name"],
            ["uid"] = (string?)set["metadata"]!["uid"],
            ["controller"] = true,
        });
        var spec = template["spec"]!.DeepClone().AsObject();
        spec["hostname"] = podName;
        spec["subdomain"] = (string?)set["spec"]!["serviceName"];
        var pod = new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Pod", ["metadata"] = metadata, ["spec"] = spec };
        if (Admission.ExceedsQuota(ns, pod, store.View) is { } refusal)
        {
            Events.Enqueue($"create Pod {podName} in StatefulSet {set["metadata"]!["name"]} failed error: {refusal}");
            return;
        }

        try
        {
            store.Create(new ObjectKey(ResourceType.Of("Pod"), ns, podName), pod, Manager);
        }
        catch (ApiException exception)
        {
            Events.Enqueue($"create Pod {podName} in StatefulSet {set["metadata"]!["name"]} failed error: {exception.Message}");
        }
    }

    private void CollectGarbage()
    {
        var sets = store.List(ResourceType.Of("StatefulSet")).Select(set => (string?)set["metadata"]!["uid"]).ToHashSet();
        foreach (var pod in store.List(ResourceType.Of("Pod")))
        {
            if (OwnerUid(pod) is { } owner && !sets.Contains(owner) && pod["metadata"]!["deletionTimestamp"] is null)
            {
                store.Delete(new ObjectKey(ResourceType.Of("Pod"), (string)pod["metadata"]!["namespace"]!, (string)pod["metadata"]!["name"]!));
            }
        }
    }

    private void ProtectClaims()
    {
        var claimType = ResourceType.Of("PersistentVolumeClaim");
        foreach (var claim in store.List(claimType).Where(claim => claim["metadata"]!["deletionTimestamp"] is not null))
        {
            var (ns, name) = ((string)claim["metadata"]!["namespace"]!, (string)claim["metadata"]!["name"]!);
            var inUse = store.List(ResourceType.Of("Pod"), ns).Any(pod => (pod["spec"]?["volumes"] as JsonArray ?? [])
                .Any(volume => (string?)volume?["persistentVolumeClaim"]?["claimName"] == name));
            if (!inUse)
            {
                store.Remove(new ObjectKey(claimType, ns, name));
                kubelet.ReleaseVolume(ns, name);
            }
        }
    }

    private void TerminateNamespaces()
    {
        foreach (var ns in store.List(ResourceType.Of("Namespace")).Where(ns => ns["metadata"]!["deletionTimestamp"] is not null))
        {
            var name = (string)ns["metadata"]!["name"]!;
            var key = new ObjectKey(ResourceType.Of("Namespace"), null, name);
            var since = _seen.GetOrAdd(key, _ => DateTimeOffset.UtcNow);
            if (DateTimeOffset.UtcNow - since < NamespaceTerminationDelay)
            {
                continue;
            }

            var contents = store.Keys().Where(candidate => candidate.Namespace == name).ToList();
            foreach (var pod in contents.Where(candidate => candidate.Type.Kind == "Pod"))
            {
                store.Delete(pod);
            }

            if (contents.Any(candidate => candidate.Type.Kind == "Pod"))
            {
                continue;
            }

            foreach (var item in contents)
            {
                store.Remove(item);
                if (item.Type.Kind == "PersistentVolumeClaim")
                {
                    kubelet.ReleaseVolume(name, item.Name);
                }
            }

            store.Remove(key);
            _seen.TryRemove(key, out _);
        }
    }

    private void AssignLoadBalancers()
    {
        var serviceType = ResourceType.Of("Service");
        foreach (var service in store.List(serviceType).Where(service => (string?)service["spec"]?["type"] == "LoadBalancer"
            && service["status"]?["loadBalancer"]?["ingress"] is null))
        {
            var key = new ObjectKey(serviceType, (string)service["metadata"]!["namespace"]!, (string)service["metadata"]!["name"]!);
            if (DateTimeOffset.UtcNow - _seen.GetOrAdd(key, _ => DateTimeOffset.UtcNow) < LoadBalancerDelay)
            {
                continue;
            }

            store.Update(key, current =>
            {
                current["status"] = new JsonObject
                {
                    ["loadBalancer"] = new JsonObject { ["ingress"] = new JsonArray(new JsonObject { ["hostname"] = $"{key.Name}.{key.Namespace}.lb.fake.test" }) },
                };
                return true;
            });
            _seen.TryRemove(key, out _);
        }
    }

    private static string? OwnerUid(JsonObject pod) => (string?)(pod["metadata"]!["ownerReferences"] as JsonArray)?.FirstOrDefault()?["uid"];

    private static int Ordinal(JsonObject pod) =>
        int.TryParse(((string)pod["metadata"]!["name"]!).Split('-')[^1], out var ordinal) ? ordinal : int.MaxValue;
}
