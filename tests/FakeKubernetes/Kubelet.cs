using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace FakeKubernetes;

/// <summary>
/// Runs each pod's container as a real local process, as a kubelet would run the image: the image's repository maps (in
/// <see cref="Images"/>) to a program that behaves like the image's entrypoint. The pod gets its own loopback address
/// (<c>127.77.x.y</c>) as its IP, standing in for its network namespace: <c>0.0.0.0</c> in its arguments becomes that
/// address. Volume mount paths in its arguments become the volume's directory on this machine, standing in for the mount
/// namespace. Environment values come from the pod spec, secrets included (a missing secret is
/// <c>CreateContainerConfigError</c>). Ready follows the readiness probe (a TCP connect to the named port). A container
/// that exits is restarted with a growing back-off (<c>CrashLoopBackOff</c>, counted in <c>restartCount</c>); a deleted
/// pod gets SIGTERM, then SIGKILL after its grace period.
/// </summary>
public sealed class Kubelet(ObjectStore store, string root) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<ObjectKey, Container> _containers = new();
    private readonly ConcurrentDictionary<ObjectKey, string> _addresses = new();
    // One counter for every kubelet in this process, starting at a place of its own per process, because test classes
    // run their clusters side by side and test projects run at the same time: two pods on one address would fight over
    // one port, and the loser would exit and be restarted, which a real cluster's pods (each in its own network
    // namespace) never do.
    private static int s_nextAddress = Environment.ProcessId % 200 * 256;

    /// <summary>Image repository (the image without its tag) to the local program that plays it.</summary>
    public ConcurrentDictionary<string, LocalImage> Images { get; } = new(StringComparer.Ordinal);

    /// <summary>Every line a pod's container printed, by <c>namespace/pod</c>.</summary>
    public ConcurrentDictionary<string, ConcurrentQueue<string>> Logs { get; } = new(StringComparer.Ordinal);

    /// <summary>The process ids of running containers, for tests that kill one.</summary>
    public IReadOnlyDictionary<string, int> ProcessIds =>
        _containers.Where(pair => pair.Value.Process is { HasExited: false }).ToDictionary(pair => $"{pair.Key.Namespace}/{pair.Key.Name}", pair => pair.Value.Process!.Id);

    public static bool IsReady(JsonObject pod) =>
        (pod["status"]?["conditions"] as JsonArray ?? []).Any(condition => (string?)condition?["type"] == "Ready" && (string?)condition["status"] == "True");

    public void Sync()
    {
        var podType = ResourceType.Of("Pod");
        foreach (var pod in store.List(podType))
        {
            var key = new ObjectKey(podType, (string)pod["metadata"]!["namespace"]!, (string)pod["metadata"]!["name"]!);
            if (pod["metadata"]!["deletionTimestamp"] is not null)
            {
                Terminate(key, pod);
                continue;
            }

            var container = _containers.GetOrAdd(key, _ => new Container());
            if (container.Process is { HasExited: true } exited)
            {
                container.Restarts++;
                container.LastExit = exited.ExitCode;
                container.NotBefore = DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(Math.Min(10_000, 500 * Math.Pow(2, container.Restarts - 1)));
                exited.Dispose();
                container.Process = null;
                SetStatus(key, pod, container, waiting: ("CrashLoopBackOff", $"back-off restarting failed container (exit code {container.LastExit})"), ready: false);
                continue;
            }

            if (container.Process is null)
            {
                if (DateTimeOffset.UtcNow >= container.NotBefore)
                {
                    Start(key, pod, container);
                }

                continue;
            }

            SetStatus(key, pod, container, waiting: null, ready: Probe(pod));
        }

        foreach (var gone in _containers.Keys.Where(key => store.Get(key) is null).ToList())
        {
            if (_containers.TryRemove(gone, out var container))
            {
                Kill(container);
            }
        }
    }

    /// <summary>Deletes the directory behind a claim that no longer exists.</summary>
    public void ReleaseVolume(string ns, string claim)
    {
        var directory = VolumeDirectory(ns, claim);
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    public string VolumeDirectory(string ns, string claim) => Path.Combine(root, "volumes", ns, claim);

    public async ValueTask DisposeAsync()
    {
        foreach (var container in _containers.Values)
        {
            Kill(container);
        }

        _containers.Clear();
        await Task.CompletedTask;
    }

    private void Start(ObjectKey key, JsonObject pod, Container container)
    {
        var ip = _addresses.GetOrAdd(key, _ => NextAddress(pod));
        var spec = pod["spec"]!;
        var definition = spec["containers"]![0]!;
        var image = (string)definition["image"]!;
        var repository = image.Split('@')[0] is var name && name.LastIndexOf(':') > name.LastIndexOf('/') ? name[..name.LastIndexOf(':')] : name;
        if (!Images.TryGetValue(repository, out var local))
        {
            container.NotBefore = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(1);
            SetStatus(key, pod, container, waiting: (container.PullFailures++ > 0 ? "ImagePullBackOff" : "ErrImagePull", $"Back-off pulling image \"{image}\""), ready: false, ip);
            return;
        }

        var mounts = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var mount in definition["volumeMounts"] as JsonArray ?? [])
        {
            var volume = (spec["volumes"] as JsonArray ?? []).FirstOrDefault(candidate => (string?)candidate?["name"] == (string?)mount!["name"]);
            if ((string?)volume?["persistentVolumeClaim"]?["claimName"] is { } claim)
            {
                var claimObject = store.Get(new ObjectKey(ResourceType.Of("PersistentVolumeClaim"), key.Namespace, claim));
                if (claimObject is null || claimObject["metadata"]!["deletionTimestamp"] is not null)
                {
                    SetStatus(key, pod, container, waiting: ("ContainerCreating", $"persistentvolumeclaim \"{claim}\" not found"), ready: false, ip);
                    return;
                }

                mounts[(string)mount!["mountPath"]!] = VolumeDirectory(key.Namespace!, claim);
            }
            else
            {
                mounts[(string)mount!["mountPath"]!] = Path.Combine(root, "pods", key.Namespace!, key.Name, (string)mount["name"]!);
            }
        }

        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var variable in definition["env"] as JsonArray ?? [])
        {
            if ((string?)variable?["value"] is { } value)
            {
                environment[(string)variable["name"]!] = value;
            }
            else if (variable?["valueFrom"]?["secretKeyRef"] is { } reference)
            {
                var secret = store.Get(new ObjectKey(ResourceType.Of("Secret"), key.Namespace, (string)reference["name"]!));
                if ((string?)secret?["data"]?[(string)reference["key"]!] is not { } encoded)
                {
                    SetStatus(key, pod, container, waiting: ("CreateContainerConfigError", $"secret \"{reference["name"]}\" not found"), ready: false, ip);
                    return;
                }

                environment[(string)variable["name"]!] = Encoding.UTF8.GetString(Convert.FromBase64String(encoded));
            }
        }

        foreach (var directory in mounts.Values)
        {
            Directory.CreateDirectory(directory);
        }

        var startInfo = new ProcessStartInfo(local.Executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in local.Arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach (var argument in definition["args"] as JsonArray ?? [])
        {
            var text = (string)argument!;
            text = text == "0.0.0.0" ? ip : text;
            foreach (var (mountPath, directory) in mounts)
            {
                if (text == mountPath || text.StartsWith(mountPath + "/", StringComparison.Ordinal))
                {
                    // Once: the mapped path (under this machine's /tmp) is not a path inside the container any more.
                    text = directory + text[mountPath.Length..];
                    break;
                }
            }

            startInfo.ArgumentList.Add(text);
        }

        foreach (var (name2, value) in environment)
        {
            startInfo.Environment[name2] = value;
        }

        var log = Logs.GetOrAdd($"{key.Namespace}/{key.Name}", _ => new ConcurrentQueue<string>());
        var process = Process.Start(startInfo)!;
        process.OutputDataReceived += (_, line) => Append(log, line.Data);
        process.ErrorDataReceived += (_, line) => Append(log, line.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        container.Process = process;
        container.StartedAt = DateTimeOffset.UtcNow;
        SetStatus(key, pod, container, waiting: null, ready: false, ip);
    }

    private void Terminate(ObjectKey key, JsonObject pod)
    {
        if (_containers.TryGetValue(key, out var container) && container.Process is { HasExited: false } process)
        {
            if (container.TerminatingSince is null)
            {
                container.TerminatingSince = DateTimeOffset.UtcNow;
                using var signal = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]);
                signal.WaitForExit();
                return;
            }

            var grace = TimeSpan.FromSeconds((int?)pod["spec"]?["terminationGracePeriodSeconds"] ?? 30);
            if (DateTimeOffset.UtcNow - container.TerminatingSince < grace)
            {
                return;
            }

            Kill(container);
        }

        _containers.TryRemove(key, out _);
        _addresses.TryRemove(key, out _);
        store.Remove(key);
    }

    private void SetStatus(ObjectKey key, JsonObject pod, Container container, (string Reason, string Message)? waiting, bool ready, string? ip = null)
    {
        ip ??= _addresses.GetValueOrDefault(key);
        var state = waiting is { } wait
            ? new JsonObject { ["waiting"] = new JsonObject { ["reason"] = wait.Reason, ["message"] = wait.Message } }
            : new JsonObject { ["running"] = new JsonObject { ["startedAt"] = container.StartedAt.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture) } };
        var status = new JsonObject
        {
            ["phase"] = container.Process is null && container.Restarts == 0 ? "Pending" : "Running",
            ["hostIP"] = "127.0.0.1",
            ["podIP"] = ip,
            ["conditions"] = new JsonArray(
                new JsonObject { ["type"] = "PodScheduled", ["status"] = "True" },
                new JsonObject { ["type"] = "Ready", ["status"] = ready ? "True" : "False" }),
            ["containerStatuses"] = new JsonArray(new JsonObject
            {
                ["name"] = (string?)pod["spec"]!["containers"]![0]!["name"],
                ["image"] = (string?)pod["spec"]!["containers"]![0]!["image"],
                ["ready"] = ready,
                ["restartCount"] = container.Restarts,
                ["state"] = state,
            }),
        };
        store.Update(key, current =>
        {
            if (JsonNode.DeepEquals(current["status"], status))
            {
                return false;
            }

            current["status"] = status;
            return true;
        });
    }

    private static bool Probe(JsonObject pod)
    {
        var ip = (string?)pod["status"]?["podIP"];
        var definition = pod["spec"]!["containers"]![0]!;
        var portName = (string?)definition["readinessProbe"]?["tcpSocket"]?["port"];
        var port = (definition["ports"] as JsonArray ?? []).FirstOrDefault(candidate => (string?)candidate?["name"] == portName)?["containerPort"];
        if (ip is null || port is null)
        {
            return ip is not null && definition["readinessProbe"] is null;
        }

        try
        {
            using var client = new TcpClient();
            return client.ConnectAsync(ip, (int)port).Wait(TimeSpan.FromMilliseconds(200)) && client.Connected;
        }
        catch (AggregateException)
        {
            return false;
        }
    }

    /// <summary>
    /// A loopback address for a new pod on which none of its container ports is taken, standing in for the pod's own
    /// network namespace.
    /// </summary>
    private static string NextAddress(JsonObject pod)
    {
        var ports = (pod["spec"]!["containers"] as JsonArray ?? [])
            .SelectMany(container => container!["ports"] as JsonArray ?? [])
            .Select(port => (int)port!["containerPort"]!)
            .ToList();
        while (true)
        {
            var next = Interlocked.Increment(ref s_nextAddress) % 65_000;
            var address = $"127.77.{next / 250}.{(next % 250) + 1}";
            if (ports.All(port => IsFree(address, port)))
            {
                return address;
            }
        }
    }

    private static bool IsFree(string address, int port)
    {
        try
        {
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Parse(address), port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static void Kill(Container container)
    {
        if (container.Process is { } process)
        {
            try
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
            }

            process.Dispose();
            container.Process = null;
        }
    }

    private static void Append(ConcurrentQueue<string> log, string? line)
    {
        if (line is not null)
        {
            log.Enqueue(line);
            while (log.Count > 500)
            {
                log.TryDequeue(out _);
            }
        }
    }

    private sealed class Container
    {
        public Process? Process { get; set; }
        public DateTimeOffset StartedAt { get; set; }
        public int Restarts { get; set; }
        public int LastExit { get; set; }
        public int PullFailures { get; set; }
        public DateTimeOffset NotBefore { get; set; }
        public DateTimeOffset? TerminatingSince { get; set; }
    }
}

/// <summary>How the fake kubelet plays an image: a local program and the arguments that precede the container's own.</summary>
public sealed record LocalImage(string Executable, IReadOnlyList<string> Arguments);
