namespace FakeKubernetes;

/// <summary>A kind the fake serves, at its REST path.</summary>
public sealed record ResourceType(string GroupVersion, string Plural, string Kind, bool Namespaced, bool HasStatus)
{
    public static readonly IReadOnlyList<ResourceType> All =
    [
        new("v1", "namespaces", "Namespace", Namespaced: false, HasStatus: true),
        new("v1", "pods", "Pod", Namespaced: true, HasStatus: true),
        new("v1", "services", "Service", Namespaced: true, HasStatus: true),
        new("v1", "secrets", "Secret", Namespaced: true, HasStatus: false),
        new("v1", "configmaps", "ConfigMap", Namespaced: true, HasStatus: false),
        new("v1", "persistentvolumeclaims", "PersistentVolumeClaim", Namespaced: true, HasStatus: true),
        new("v1", "resourcequotas", "ResourceQuota", Namespaced: true, HasStatus: true),
        new("v1", "limitranges", "LimitRange", Namespaced: true, HasStatus: false),
        new("apps/v1", "statefulsets", "StatefulSet", Namespaced: true, HasStatus: true),
        new("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", Namespaced: true, HasStatus: false),
    ];

    public static ResourceType? Find(string groupVersion, string plural) =>
        All.FirstOrDefault(type => type.GroupVersion == groupVersion && type.Plural == plural);

    public static ResourceType Of(string kind) => All.First(type => type.Kind == kind);
}

/// <summary>Where one object lives: its type, namespace (null for cluster-scoped kinds) and name.</summary>
public sealed record ObjectKey(ResourceType Type, string? Namespace, string Name)
{
    public override string ToString() => Namespace is null ? $"{Type.Kind} {Name}" : $"{Type.Kind} {Namespace}/{Name}";
}

/// <summary>An API error as the API server answers it: a Status object with a reason and an HTTP code.</summary>
public sealed class ApiException(int code, string reason, string message) : Exception(message)
{
    public int Code { get; } = code;
    public string Reason { get; } = reason;

    public static ApiException NotFound(ObjectKey key) =>
        new(404, "NotFound", $"{key.Type.Plural}{(key.Type.GroupVersion == "v1" ? "" : "." + key.Type.GroupVersion.Split('/')[0])} \"{key.Name}\" not found");

    public static ApiException Invalid(ObjectKey key, string field, string detail) =>
        new(422, "Invalid", $"{key.Type.Kind} \"{key.Name}\" is invalid: {field}: {detail}");
}
