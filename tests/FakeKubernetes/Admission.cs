using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace FakeKubernetes;

/// <summary>
/// What the real API server refuses or fills in on a write, for the kinds and fields the backend uses: names,
/// required fields, quantities, immutable fields (a StatefulSet's spec beyond replicas/template/updateStrategy, a claim's
/// spec beyond a growing storage request, a Service's clusterIP), secret data as base64, a tenant's ResourceQuota
/// (claims and their storage at admission, like the quota admission plugin), and defaults (cluster IPs, the claim
/// protection finalizer, a namespace's name label).
/// </summary>
public static partial class Admission
{
    private static int s_clusterIp = 10;

    public sealed record View(Func<ObjectKey, JsonObject?> Get, Func<ResourceType, IReadOnlyList<(ObjectKey Key, JsonObject Object)>> All);

    public static void Admit(ObjectKey key, JsonObject? existing, JsonObject proposed, View view)
    {
        var name = key.Name;
        if (!(key.Type.Kind is "Namespace" or "Service" ? DnsLabel().IsMatch(name) && name.Length <= 63 : DnsSubdomain().IsMatch(name) && name.Length <= 253))
        {
            throw ApiException.Invalid(key, "metadata.name", $"Invalid value: \"{name}\": a lowercase RFC 1123 {(key.Type.Kind is "Namespace" or "Service" ? "label" : "subdomain")} must consist of lower case alphanumeric characters, '-' or '.'");
        }

        CheckLabels(key, proposed["metadata"]?["labels"] as JsonObject, "metadata.labels");
        var spec = proposed["spec"] as JsonObject;
        switch (key.Type.Kind)
        {
            case "Namespace":
                proposed["metadata"]!["labels"] ??= new JsonObject();
                proposed["metadata"]!["labels"]!["kubernetes.io/metadata.name"] = name;
                proposed["status"] ??= new JsonObject { ["phase"] = "Active" };
                break;
            case "Secret":
                foreach (var (entry, value) in proposed["data"] as JsonObject ?? [])
                {
                    if (value is not JsonValue text || !IsBase64((string?)text))
                    {
                        throw ApiException.Invalid(key, $"data[{entry}]", "Invalid value: illegal base64 data");
                    }
                }

                break;
            case "PersistentVolumeClaim":
                AdmitClaim(key, existing, proposed, spec, view);
                break;
            case "Service":
                AdmitService(key, existing, proposed, spec);
                break;
            case "StatefulSet":
                AdmitStatefulSet(key, existing, spec);
                break;
            case "Pod":
                CheckPodSpec(key, spec, "spec");
                break;
            case "ResourceQuota":
            case "LimitRange":
                CheckQuantities(key, spec, "spec");
                break;
            case "NetworkPolicy":
                Require(key, spec?["podSelector"], "spec.podSelector");
                break;
        }
    }

    /// <summary>The quota admission plugin's refusal for a pod the namespace's quota cannot hold; null when it fits.</summary>
    public static string? ExceedsQuota(string ns, JsonObject pod, View view)
    {
        var quotas = view.All(ResourceType.Of("ResourceQuota")).Where(entry => entry.Key.Namespace == ns).ToList();
        if (quotas.Count == 0)
        {
            return null;
        }

        var pods = view.All(ResourceType.Of("Pod")).Where(entry => entry.Key.Namespace == ns && entry.Object["metadata"]?["deletionTimestamp"] is null).Select(entry => entry.Object).ToList();
        foreach (var (_, quota) in quotas)
        {
            foreach (var (resource, hard) in quota["spec"]?["hard"] as JsonObject ?? [])
            {
                var limit = Quantity.Parse((string)hard!);
                double Sum(IEnumerable<JsonObject> all) => resource == "pods" ? all.Count() : all.Sum(each => PodResource(each, resource));
                if (resource is "pods" or "requests.cpu" or "limits.cpu" or "requests.memory" or "limits.memory")
                {
                    if (resource != "pods" && PodResource(pod, resource, out var missing) is var _ && missing)
                    {
                        return $"pods \"{pod["metadata"]?["name"]}\" is forbidden: failed quota: {quota["metadata"]?["name"]}: must specify {resource.Replace("requests.", "", StringComparison.Ordinal).Replace("limits.", "", StringComparison.Ordinal)}";
                    }

                    var used = Sum(pods);
                    var wanted = Sum([pod]);
                    if (used + wanted > limit)
                    {
                        return $"pods \"{pod["metadata"]?["name"]}\" is forbidden: exceeded quota: {quota["metadata"]?["name"]}, requested: {resource}={wanted.ToString(CultureInfo.InvariantCulture)}, used: {resource}={used.ToString(CultureInfo.InvariantCulture)}, limited: {resource}={hard}";
                    }
                }
            }
        }

        return null;
    }

    private static double PodResource(JsonObject pod, string resource) => PodResource(pod, resource, out _);

    private static double PodResource(JsonObject pod, string resource, out bool missing)
    {
        var (section, name) = resource.Split('.') is [var first, var second] ? (first, second) : ("requests", resource);
        missing = false;
        double total = 0;
        foreach (var container in pod["spec"]?["containers"] as JsonArray ?? [])
        {
            if ((string?)container?["resources"]?[section]?[name] is { } value)
            {
                total += Quantity.Parse(value);
            }
            else
            {
                missing = true;
            }
        }

        return total;
    }

    private static void AdmitClaim(ObjectKey key, JsonObject? existing, JsonObject proposed, JsonObject? spec, View view)
    {
        var storage = (string?)spec?["resources"]?["requests"]?["storage"];
        Require(key, storage, "spec.resources.requests[storage]");
        CheckQuantities(key, spec, "spec");
        if (spec?["accessModes"] is not JsonArray { Count: > 0 })
        {
            throw ApiException.Invalid(key, "spec.accessModes", "Required value: at least 1 access mode is required");
        }

        if (existing is null)
        {
            var finalizers = new JsonArray("kubernetes.io/pvc-protection");
            proposed["metadata"]!["finalizers"] = finalizers;
            proposed["status"] = new JsonObject { ["phase"] = "Bound", ["capacity"] = new JsonObject { ["storage"] = storage } };
            var claims = view.All(ResourceType.Of("PersistentVolumeClaim")).Where(entry => entry.Key.Namespace == key.Namespace).Select(entry => entry.Object).ToList();
            CheckClaimQuota(key, claims, Quantity.Parse(storage!), view);
            return;
        }

        var before = Quantity.Parse((string)existing["spec"]!["resources"]!["requests"]!["storage"]!);
        var after = Quantity.Parse(storage!);
        if (after < before)
        {
            throw ApiException.Invalid(key, "spec.resources.requests.storage", "Forbidden: field can not be less than status.capacity");
        }

        var comparableBefore = existing["spec"]!.DeepClone().AsObject();
        var comparableAfter = spec!.DeepClone().AsObject();
        comparableBefore.Remove("resources");
        comparableAfter.Remove("resources");
        if (!JsonNode.DeepEquals(comparableBefore, comparableAfter))
        {
            throw ApiException.Invalid(key, "spec", "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims");
        }
    }

    private static void CheckClaimQuota(ObjectKey key, List<JsonObject> claims, double storage, View view)
    {
        foreach (var (_, quota) in view.All(ResourceType.Of("ResourceQuota")).Where(entry => entry.Key.Namespace == key.Namespace))
        {
            var hard = quota["spec"]?["hard"] as JsonObject ?? [];
            if ((string?)hard["persistentvolumeclaims"] is { } count && claims.Count + 1 > Quantity.Parse(count))
            {
                throw new ApiException(403, "Forbidden", $"persistentvolumeclaims \"{key.Name}\" is forbidden: exceeded quota: {quota["metadata"]?["name"]}, requested: persistentvolumeclaims=1, limited: persistentvolumeclaims={count}");
            }

            var used = claims.Sum(claim => Quantity.Parse((string)claim["spec"]!["resources"]!["requests"]!["storage"]!));
            if ((string?)hard["requests.storage"] is { } limit && used + storage > Quantity.Parse(limit))
            {
                throw new ApiException(403, "Forbidden", $"persistentvolumeclaims \"{key.Name}\" is forbidden: exceeded quota: {quota["metadata"]?["name"]}, limited: requests.storage={limit}");
            }
        }
    }

    private static void AdmitService(ObjectKey key, JsonObject? existing, JsonObject proposed, JsonObject? spec)
    {
        if (spec?["ports"] is not JsonArray { Count: > 0 } ports)
        {
            throw ApiException.Invalid(key, "spec.ports", "Required value");
        }

        foreach (var port in ports)
        {
            if ((int?)port?["port"] is not (>= 1 and <= 65535))
            {
                throw ApiException.Invalid(key, "spec.ports[0].port", "Invalid value: must be between 1 and 65535, inclusive");
            }
        }

        spec["type"] ??= "ClusterIP";
        var assigned = (string?)existing?["spec"]?["clusterIP"];
        if ((string?)spec["clusterIP"] is { } requested && assigned is not null && requested != assigned)
        {
            throw ApiException.Invalid(key, "spec.clusterIP", "Invalid value: field is immutable");
        }

        spec["clusterIP"] = assigned ?? $"10.96.{Interlocked.Increment(ref s_clusterIp) / 250}.{s_clusterIp % 250 + 1}";
        proposed["status"] ??= new JsonObject { ["loadBalancer"] = new JsonObject() };
    }

    private static void AdmitStatefulSet(ObjectKey key, JsonObject? existing, JsonObject? spec)
    {
        var selector = spec?["selector"]?["matchLabels"] as JsonObject;
        if (selector is null || selector.Count == 0)
        {
            throw ApiException.Invalid(key, "spec.selector", "Required value");
        }

        var labels = spec!["template"]?["metadata"]?["labels"] as JsonObject ?? [];
        if (selector.Any(pair => (string?)labels[pair.Key] != (string?)pair.Value))
        {
            throw ApiException.Invalid(key, "spec.template.metadata.labels", "Invalid value: `selector` does not match template `labels`");
        }

        if ((int?)spec["replicas"] is < 0)
        {
            throw ApiException.Invalid(key, "spec.replicas", "Invalid value: must be greater than or equal to 0");
        }

        CheckPodSpec(key, spec["template"]?["spec"] as JsonObject, "spec.template.spec");
        if (existing?["spec"] is JsonObject before)
        {
            var comparableBefore = before.DeepClone().AsObject();
            var comparableAfter = spec.DeepClone().AsObject();
            foreach (var mutable in new[] { "replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy", "minReadySeconds" })
            {
                comparableBefore.Remove(mutable);
                comparableAfter.Remove(mutable);
            }

            if (!JsonNode.DeepEquals(comparableBefore, comparableAfter))
            {
                throw ApiException.Invalid(key, "spec",
                    "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden");
            }
        }
    }

    private static void CheckPodSpec(ObjectKey key, JsonObject? spec, string field)
    {
        if (spec?["containers"] is not JsonArray { Count: > 0 } containers)
        {
            throw ApiException.Invalid(key, $"{field}.containers", "Required value");
        }

        for (var index = 0; index < containers.Count; index++)
        {
            var container = containers[index]!;
            Require(key, (string?)container["name"], $"{field}.containers[{index}].name");
            Require(key, (string?)container["image"], $"{field}.containers[{index}].image");
            CheckQuantities(key, container["resources"] as JsonObject, $"{field}.containers[{index}].resources");
            foreach (var env in container["env"] as JsonArray ?? [])
            {
                if (env?["value"] is not null && env["valueFrom"] is not null)
                {
                    throw ApiException.Invalid(key, $"{field}.containers[{index}].env.valueFrom", "Invalid value: may not be specified when `value` is not empty");
                }
            }
        }
    }

    private static void CheckQuantities(ObjectKey key, JsonObject? node, string field)
    {
        foreach (var (name, value) in node ?? [])
        {
            if (value is JsonObject child)
            {
                CheckQuantities(key, child, $"{field}.{name}");
            }
            else if (value is JsonValue text && text.TryGetValue<string>(out var quantity) && !Quantity.IsValid(quantity))
            {
                throw ApiException.Invalid(key, $"{field}.{name}", $"Invalid value: \"{quantity}\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");
            }
        }
    }

    private static void CheckLabels(ObjectKey key, JsonObject? labels, string field)
    {
        foreach (var (name, value) in labels ?? [])
        {
            var text = (string?)value ?? "";
            if (text.Length > 63 || (text.Length > 0 && !LabelValue().IsMatch(text)))
            {
                throw ApiException.Invalid(key, $"{field}", $"Invalid value: \"{text}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.' (label {name})");
            }
        }
    }

    private static void Require(ObjectKey key, object? value, string field)
    {
        if (value is null || (value is string text && text.Length == 0))
        {
            throw ApiException.Invalid(key, field, "Required value");
        }
    }

    private static bool IsBase64(string? text)
    {
        if (text is null)
        {
            return false;
        }

        var buffer = new byte[text.Length];
        return Convert.TryFromBase64String(text, buffer, out _);
    }

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    private static partial Regex DnsLabel();

    [GeneratedRegex(@"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    private static partial Regex DnsSubdomain();

    [GeneratedRegex("^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")]
    private static partial Regex LabelValue();
}

/// <summary>Kubernetes resource quantities: <c>250m</c>, <c>2</c>, <c>384Mi</c>, <c>1Gi</c>, <c>1G</c>.</summary>
public static partial class Quantity
{
    public static bool IsValid(string text) => Pattern().IsMatch(text);

    public static double Parse(string text)
    {
        var match = Pattern().Match(text);
        if (!match.Success)
        {
            throw new FormatException($"'{text}' is not a quantity");
        }

        var number = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        return number * match.Groups[2].Value switch
        {
            "" => 1,
            "m" => 0.001,
            "k" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            "Ki" => 1024,
            "Mi" => 1024 * 1024,
            "Gi" => 1024d * 1024 * 1024,
            "Ti" => 1024d * 1024 * 1024 * 1024,
            _ => throw new FormatException($"'{text}' has an unknown suffix"),
        };
    }

    [GeneratedRegex("^([0-9]+(?:\\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")]
    private static partial Regex Pattern();
}
