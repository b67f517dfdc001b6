using System.Globalization;
using System.Text.Json.Nodes;

namespace FakeKubernetes;

/// <summary>
/// The fake's etcd and the API server's write path: every write bumps the object's resourceVersion, a spec change bumps its
/// generation, writes to a resource leave its status alone and writes to its status subresource leave the rest alone,
/// server-side apply tracks which field manager owns which fields, and admission (<see cref="Admission"/>) refuses what
/// the real API server refuses. All under one lock: each request sees and makes one consistent state.
/// </summary>
public sealed class ObjectStore(TimeProvider time)
{
    private const char PathSeparator = '\u001f';
    private readonly Lock _gate = new();
    private readonly Dictionary<ObjectKey, Stored> _objects = [];
    private long _resourceVersion = 1000;

    /// <summary>Raised after every change, outside the lock: controllers and the kubelet wake on it.</summary>
    public event Action? Changed;

    public JsonObject? Get(ObjectKey key)
    {
        lock (_gate)
        {
            return _objects.TryGetValue(key, out var stored) ? Clone(stored.Object) : null;
        }
    }

    public IReadOnlyList<JsonObject> List(ResourceType type, string? ns = null)
    {
        lock (_gate)
        {
            return [.. _objects
                .Where(pair => pair.Key.Type == type && (ns is null || pair.Key.Namespace == ns))
                .OrderBy(pair => pair.Key.Namespace, StringComparer.Ordinal).ThenBy(pair => pair.Key.Name, StringComparer.Ordinal)
                .Select(pair => Clone(pair.Value.Object))];
        }
    }

    /// <summary>The field managers of an object and the fields each owns, as dotted paths.</summary>
    public IReadOnlyDictionary<string, IReadOnlyCollection<string>> Managers(ObjectKey key)
    {
        lock (_gate)
        {
            return _objects.TryGetValue(key, out var stored)
                ? stored.Managers.ToDictionary(pair => pair.Key, pair => (IReadOnlyCollection<string>)[.. pair.Value.Keys.Select(path => path.Replace(PathSeparator, '.'))])
                : new Dictionary<string, IReadOnlyCollection<string>>();
        }
    }

    /// <summary>POST: a new object; one that exists is a 409 AlreadyExists.</summary>
    public JsonObject Create(ObjectKey key, JsonObject body, string manager)
    {
        JsonObject result;
        lock (_gate)
        {
            if (_objects.ContainsKey(key))
            {
                throw new ApiException(409, "AlreadyExists", $"{key.Type.Plural} \"{key.Name}\" already exists");
            }

            body.Remove("status");
            result = Insert(key, body, manager);
        }

        Changed?.Invoke();
        return result;
    }

    /// <summary>PUT: a whole object at the resourceVersion the caller read; anything else is a conflict.</summary>
    public JsonObject Replace(ObjectKey key, JsonObject body, string manager, bool status)
    {
        JsonObject result;
        lock (_gate)
        {
            var stored = _objects.GetValueOrDefault(key) ?? throw ApiException.NotFound(key);
            var version = (string?)body["metadata"]?["resourceVersion"];
            if (string.IsNullOrEmpty(version))
            {
                throw ApiException.Invalid(key, "metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update");
            }

            if (version != (string?)stored.Object["metadata"]!["resourceVersion"])
            {
                throw Conflict(key);
            }

            var proposed = status ? WithStatus(stored.Object, body["status"]) : WithStatus(body, stored.Object["status"]);
            if (!status)
            {
                stored.Managers[manager] = Leaves(Without(body, "status"));
            }

            result = Commit(key, stored, proposed);
        }

        Changed?.Invoke();
        return result;
    }

    /// <summary>
    /// Server-side apply: creates the object when absent; otherwise sets the fields the applied configuration names, removes
    /// those this manager set before and no longer names (unless another manager owns them too), and refuses with a 409 to
    /// change a field another manager owns, unless forced (which takes it over).
    /// </summary>
    public JsonObject Apply(ObjectKey key, JsonObject applied, string manager, bool force, bool status)
    {
        JsonObject result;
        manager = status ? manager + "/status" : manager;
        lock (_gate)
        {
            var configuration = status ? new JsonObject { ["status"] = applied["status"]?.DeepClone() } : Without(applied, "status");
            var leaves = Leaves(configuration);
            foreach (var identity in new[] { "apiVersion", "kind", $"metadata{PathSeparator}name", $"metadata{PathSeparator}namespace" })
            {
                leaves.Remove(identity);
            }

            if (!_objects.TryGetValue(key, out var stored))
            {
                if (status)
                {
                    throw ApiException.NotFound(key);
                }

                result = Insert(key, configuration, manager);
                _objects[key].Managers[manager] = leaves;
            }
            else
            {
                if ((string?)applied["metadata"]?["resourceVersion"] is { Length: > 0 } version && version != (string?)stored.Object["metadata"]!["resourceVersion"])
                {
                    throw Conflict(key);
                }

                var current = Leaves(stored.Object);
                var conflicts = stored.Managers
                    .Where(owner => owner.Key != manager)
                    .SelectMany(owner => owner.Value.Keys
                        .Where(path => leaves.TryGetValue(path, out var value) && !JsonNode.DeepEquals(value, current.GetValueOrDefault(path)))
                        .Select(path => (Manager: owner.Key, Path: path)))
                    .ToList();
                if (conflicts.Count > 0 && !force)
                {
                    throw new ApiException(409, "Conflict",
                        $"Apply failed with {conflicts.Count} conflict{(conflicts.Count == 1 ? "" : "s")}: " +
                        string.Join("; ", conflicts.Select(conflict => $"conflict with \"{conflict.Manager}\": .{conflict.Path.Replace(PathSeparator, '.')}")));
                }

                foreach (var (owner, path) in conflicts)
                {
                    stored.Managers[owner].Remove(path);
                }

                var proposed = Clone(stored.Object);
                var previous = stored.Managers.GetValueOrDefault(manager) ?? [];
                foreach (var path in previous.Keys.Where(path => !leaves.ContainsKey(path)))
                {
                    if (!stored.Managers.Any(owner => owner.Key != manager && owner.Value.ContainsKey(path)))
                    {
                        RemovePath(proposed, path);
                    }
                }

                Merge(proposed, configuration);
                stored.Managers[manager] = leaves;
                result = Commit(key, stored, proposed);
            }
        }

        Changed?.Invoke();
        return result;
    }

    /// <summary>DELETE: gone at once, or marked for deletion while finalizers (or a graceful pod stop) hold it.</summary>
    public JsonObject Delete(ObjectKey key)
    {
        JsonObject result;
        lock (_gate)
        {
            var stored = _objects.GetValueOrDefault(key) ?? throw ApiException.NotFound(key);
            var metadata = stored.Object["metadata"]!.AsObject();
            var held = metadata["finalizers"] is JsonArray { Count: > 0 } || key.Type.Kind is "Pod" or "Namespace";
            if (!held)
            {
                _objects.Remove(key);
                result = Clone(stored.Object);
            }
            else
            {
                if (metadata["deletionTimestamp"] is null)
                {
                    var proposed = Clone(stored.Object);
                    proposed["metadata"]!["deletionTimestamp"] = Timestamp();
                    if (key.Type.Kind == "Namespace")
                    {
                        proposed["status"] = new JsonObject { ["phase"] = "Terminating" };
                    }

                    stored.Object = proposed;
                    Bump(proposed);
                }

                result = Clone(stored.Object);
            }
        }

        Changed?.Invoke();
        return result;
    }

    /// <summary>A controller's write (status, finalizers, defaults): no admission, no field managers.</summary>
    public bool Update(ObjectKey key, Func<JsonObject, bool> change)
    {
        bool changed;
        lock (_gate)
        {
            if (!_objects.TryGetValue(key, out var stored))
            {
                return false;
            }

            var proposed = Clone(stored.Object);
            changed = change(proposed);
            if (changed)
            {
                SetGeneration(stored.Object, proposed);
                stored.Object = proposed;
                Bump(proposed);
            }
        }

        if (changed)
        {
            Changed?.Invoke();
        }

        return changed;
    }

    /// <summary>The end of a deletion that was held (finalizers done, pod stopped, namespace emptied).</summary>
    public void Remove(ObjectKey key)
    {
        bool removed;
        lock (_gate)
        {
            removed = _objects.Remove(key);
        }

        if (removed)
        {
            Changed?.Invoke();
        }
    }

    public IReadOnlyList<ObjectKey> Keys()
    {
        lock (_gate)
        {
            return [.. _objects.Keys];
        }
    }

    internal Admission.View View => new(key => _objects.TryGetValue(key, out var stored) ? stored.Object : null, type => [.. _objects.Where(pair => pair.Key.Type == type).Select(pair => (pair.Key, pair.Value.Object))]);

    private JsonObject Insert(ObjectKey key, JsonObject body, string manager)
    {
        if (key.Type.Namespaced)
        {
            var ns = _objects.GetValueOrDefault(new ObjectKey(ResourceType.Of("Namespace"), null, key.Namespace!))
                ?? throw new ApiException(404, "NotFound", $"namespaces \"{key.Namespace}\" not found");
            if ((string?)ns.Object["status"]?["phase"] == "Terminating")
            {
                throw new ApiException(403, "Forbidden",
                    $"{key.Type.Plural} \"{key.Name}\" is forbidden: unable to create new content in namespace {key.Namespace} because it is being terminated");
            }
        }

        var proposed = Clone(body);
        var metadata = proposed["metadata"] as JsonObject ?? new JsonObject();
        proposed["metadata"] = metadata;
        CheckIdentity(key, proposed);
        metadata["uid"] = Guid.NewGuid().ToString();
        metadata["creationTimestamp"] = Timestamp();
        metadata["generation"] = 1L;
        if (key.Namespace is not null)
        {
            metadata["namespace"] = key.Namespace;
        }

        Admission.Admit(key, existing: null, proposed, View);
        Bump(proposed);
        _objects[key] = new Stored(proposed, new Dictionary<string, Dictionary<string, JsonNode?>> { [manager] = Leaves(Without(body, "status")) });
        return Clone(proposed);
    }

    private JsonObject Commit(ObjectKey key, Stored stored, JsonObject proposed)
    {
        CheckIdentity(key, proposed);
        foreach (var kept in new[] { "uid", "creationTimestamp", "generation", "deletionTimestamp", "namespace", "resourceVersion" })
        {
            proposed["metadata"]![kept] = stored.Object["metadata"]![kept]?.DeepClone();
        }

        if (JsonNode.DeepEquals(proposed, stored.Object))
        {
            return Clone(stored.Object);
        }

        Admission.Admit(key, stored.Object, proposed, View);
        SetGeneration(stored.Object, proposed);
        Bump(proposed);
        stored.Object = proposed;
        return Clone(proposed);
    }

    private static void CheckIdentity(ObjectKey key, JsonObject proposed)
    {
        var name = (string?)proposed["metadata"]?["name"];
        if (name != key.Name)
        {
            throw new ApiException(400, "BadRequest", $"the name of the object ({name}) does not match the name on the URL ({key.Name})");
        }

        if ((string?)proposed["kind"] is { } kind && kind != key.Type.Kind)
        {
            throw new ApiException(400, "BadRequest", $"the kind of the object ({kind}) does not match {key.Type.Kind}");
        }

        var ns = (string?)proposed["metadata"]?["namespace"];
        if (ns is not null && ns != key.Namespace)
        {
            throw new ApiException(400, "BadRequest", $"the namespace of the provided object does not match the namespace sent on the request");
        }
    }

    private static void SetGeneration(JsonObject before, JsonObject after)
    {
        if (!JsonNode.DeepEquals(Without(Without(before, "metadata"), "status"), Without(Without(after, "metadata"), "status")))
        {
            after["metadata"]!["generation"] = ((long?)before["metadata"]!["generation"] ?? 0) + 1;
        }
    }

    private void Bump(JsonObject target) =>
        target["metadata"]!["resourceVersion"] = (++_resourceVersion).ToString(CultureInfo.InvariantCulture);

    private string Timestamp() => time.GetUtcNow().ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    private static ApiException Conflict(ObjectKey key) => new(409, "Conflict",
        $"Operation cannot be fulfilled on {key.Type.Plural} \"{key.Name}\": the object has been modified; please apply your changes to the latest version and try again");

    private static JsonObject WithStatus(JsonObject source, JsonNode? status)
    {
        var copy = Without(source, "status");
        if (status is not null)
        {
            copy["status"] = status.DeepClone();
        }

        return copy;
    }

    private static JsonObject Without(JsonObject source, string property)
    {
        var copy = Clone(source);
        copy.Remove(property);
        return copy;
    }

    private static JsonObject Clone(JsonObject source) => source.DeepClone().AsObject();

    /// <summary>Every leaf of an object by path; lists count as one value (atomic), as most of the fields this fake serves are.</summary>
    private static Dictionary<string, JsonNode?> Leaves(JsonObject source)
    {
        var leaves = new Dictionary<string, JsonNode?>(StringComparer.Ordinal);
        void Walk(JsonObject node, string prefix)
        {
            foreach (var (name, value) in node)
            {
                var path = prefix.Length == 0 ? name : prefix + PathSeparator + name;
                if (value is JsonObject child && child.Count > 0)
                {
                    Walk(child, path);
                }
                else
                {
                    leaves[path] = value?.DeepClone();
                }
            }
        }

        Walk(source, "");
        return leaves;
    }

    private static void RemovePath(JsonObject target, string path)
    {
        var parts = path.Split(PathSeparator);
        JsonObject? node = target;
        foreach (var part in parts[..^1])
        {
            node = node?[part] as JsonObject;
        }

        node?.Remove(parts[^1]);
    }

    private static void Merge(JsonObject target, JsonObject source)
    {
        foreach (var (name, value) in source)
        {
            if (value is JsonObject child && target[name] is JsonObject existing)
            {
                Merge(existing, child);
            }
            else
            {
                target[name] = value?.DeepClone();
            }
        }
    }

    private sealed class Stored(JsonObject value, Dictionary<string, Dictionary<string, JsonNode?>> managers)
    {
        public JsonObject Object { get; set; } = value;
        public Dictionary<string, Dictionary<string, JsonNode?>> Managers { get; } = managers;
    }
}
