using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace FakeArm;

/// <summary>
/// Runs a Container App's active revision as a real local process, as the environment would run its one replica: the image
/// repository maps (in <see cref="Images"/>) to a program that behaves like the image; the app's ingress address is a
/// loopback address of its own (<c>127.78.x.y</c>), which <c>0.0.0.0</c> in its arguments becomes; the Azure Files volume
/// is a directory per storage and sub-path; secrets reach the environment by <c>secretRef</c>. A container that exits is
/// started again and counted.
/// </summary>
public sealed class AppRunner(string root) : IDisposable
{
    private readonly ConcurrentDictionary<string, Replica> _replicas = new(StringComparer.OrdinalIgnoreCase);
    private int _nextAddress;

    public ConcurrentDictionary<string, (string Executable, IReadOnlyList<string> Arguments)> Images { get; } = new(StringComparer.Ordinal);

    public ConcurrentQueue<string> Output { get; } = new();

    public IReadOnlyDictionary<string, int> ProcessIds =>
        _replicas.Where(pair => pair.Value.Process is { HasExited: false }).ToDictionary(pair => pair.Key, pair => pair.Value.Process!.Id, StringComparer.OrdinalIgnoreCase);

    public string AddressFor(string appId) => _replicas.GetOrAdd(appId, _ => new Replica(NextAddress())).Address;

    public string ShareDirectory(string storage, string subPath) => Path.Combine(root, "shares", storage, subPath);

    /// <summary>Runs the revision's template, replacing what ran before (a new revision); returns an error for a person, or null.</summary>
    public string? Run(string appId, JsonObject template, IReadOnlyDictionary<string, string> secrets)
    {
        var replica = _replicas.GetOrAdd(appId, _ => new Replica(NextAddress()));
        Stop(replica);
        var container = template["containers"]![0]!;
        var image = (string)container["image"]!;
        var repository = image.LastIndexOf(':') > image.LastIndexOf('/') ? image[..image.LastIndexOf(':')] : image;
        if (!Images.TryGetValue(repository, out var local))
        {
            return $"Failed to pull image \"{image}\"";
        }

        var mounts = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var mount in container["volumeMounts"] as JsonArray ?? [])
        {
            var volume = (template["volumes"] as JsonArray ?? []).First(candidate => (string?)candidate!["name"] == (string?)mount!["volumeName"])!;
            var directory = ShareDirectory((string)volume["storageName"]!, (string?)mount!["subPath"] ?? "");
            Directory.CreateDirectory(directory);
            mounts[(string)mount["mountPath"]!] = directory;
        }

        var startInfo = new ProcessStartInfo(local.Executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in local.Arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach (var argument in container["args"] as JsonArray ?? [])
        {
            var text = (string)argument! == "0.0.0.0" ? replica.Address : (string)argument!;
            var mount = mounts.FirstOrDefault(pair => text == pair.Key || text.StartsWith(pair.Key + "/", StringComparison.Ordinal));
            startInfo.ArgumentList.Add(mount.Key is null ? text : mount.Value + text[mount.Key.Length..]);
        }

        foreach (var variable in container["env"] as JsonArray ?? [])
        {
            startInfo.Environment[(string)variable!["name"]!] = (string?)variable["secretRef"] is { } reference ? secrets[reference] : (string?)variable["value"];
        }

        replica.StartInfo = startInfo;
        Start(replica);
        return null;
    }

    /// <summary>Restarts exited containers (counting them) and answers whether the app's port takes connections.</summary>
    public bool IsReady(string appId, int port)
    {
        if (!_replicas.TryGetValue(appId, out var replica) || replica.StartInfo is null)
        {
            return false;
        }

        if (replica.Process is { HasExited: true })
        {
            replica.RestartCount++;
            Start(replica);
            return false;
        }

        try
        {
            using var client = new TcpClient();
            return client.ConnectAsync(replica.Address, port).Wait(TimeSpan.FromMilliseconds(200)) && client.Connected;
        }
        catch (AggregateException)
        {
            return false;
        }
    }

    public int RestartCount(string appId) => _replicas.TryGetValue(appId, out var replica) ? replica.RestartCount : 0;

    /// <summary>Stops the app's container (stop action); <paramref name="forget"/> also drops it (delete).</summary>
    public void Stop(string appId, bool forget)
    {
        if (_replicas.TryGetValue(appId, out var replica))
        {
            Stop(replica);
            replica.StartInfo = null;
            if (forget)
            {
                _replicas.TryRemove(appId, out _);
            }
        }
    }

    public void Dispose()
    {
        foreach (var replica in _replicas.Values)
        {
            Stop(replica);
        }
    }

    private void Start(Replica replica)
    {
        var process = Process.Start(replica.StartInfo!)!;
        process.OutputDataReceived += (_, line) => Record(line.Data);
        process.ErrorDataReceived += (_, line) => Record(line.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        replica.Process = process;
    }

    private void Record(string? line)
    {
        if (line is not null)
        {
            Output.Enqueue(line);
            while (Output.Count > 1000)
            {
                Output.TryDequeue(out _);
            }
        }
    }

    private static void Stop(Replica replica)
    {
        if (replica.Process is { } process)
        {
            try
            {
                if (!process.HasExited)
                {
                    using var signal = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]);
                    signal.WaitForExit();
                    if (!process.WaitForExit(10_000))
                    {
                        process.Kill(entireProcessTree: true);
                        process.WaitForExit(5000);
                    }
                }
            }
            catch (InvalidOperationException)
            {
            }

            process.Dispose();
            replica.Process = null;
        }
    }

    private string NextAddress()
    {
        var next = Interlocked.Increment(ref _nextAddress);
        return $"127.78.{next / 250}.{(next % 250) + 1}";
    }

    private sealed class Replica(string address)
    {
        public string Address { get; } = address;
        public ProcessStartInfo? StartInfo { get; set; }
        public Process? Process { get; set; }
        public int RestartCount { get; set; }
    }
}
