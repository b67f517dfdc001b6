using System.Diagnostics;
using System.Reflection;

namespace ControlPlane.Bench;

/// <summary>
/// The real control plane as its own process, as an operator runs it: <c>dotnet ControlPlane.dll</c> from
/// its build output, with a private data directory and a free port.
/// </summary>
internal sealed class ControlPlaneHost : IAsyncDisposable
{
    private static readonly TimeSpan s_readyTimeout = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan s_stopTimeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly string _instancesDirectory;

    private ControlPlaneHost(Process process, Uri baseAddress, string dataDirectory, string instancesDirectory, string logFile)
    {
        _process = process;
        BaseAddress = baseAddress;
        DataDirectory = dataDirectory;
        _instancesDirectory = instancesDirectory;
        LogFile = logFile;
    }

    public Uri BaseAddress { get; }

    public int ProcessId => _process.Id;

    /// <summary>Processes besides the control plane that do its work (the Provisioner app in the Dapr path), for CPU accounting.</summary>
    public IReadOnlyList<int> HelperProcessIds { get; init; } = [];

    public string DataDirectory { get; }

    public string LogFile { get; }

    /// <summary>CPU used so far by the control plane and its helpers.</summary>
    public TimeSpan? Cpu() =>
        HelperProcessIds.Select(ProcessCpu.Of).Aggregate(ProcessCpu.Of(ProcessId), (sum, used) => sum + used);

    /// <summary>Where the Local backend keeps instance <paramref name="instanceId"/>'s data.</summary>
    public string InstanceDataDirectory(string instanceId) => Path.Combine(_instancesDirectory, instanceId, "data");

    /// <summary>The platform-admin key the control plane wrote to <c>&lt;dataDir&gt;/admin-api-key</c> on its first start.</summary>
    public string AdminApiKey { get; private set; } = "";

    /// <summary>ControlPlane.dll of the build this benchmark was built with (its project reference builds it first).</summary>
    public static string LocateBuild() => LocateBuild("ControlPlanePath", "control plane");

    /// <summary>The build output of an app this benchmark references (recorded in its assembly metadata under <paramref name="key"/>).</summary>
    public static string LocateBuild(string key, string what)
    {
        var path = typeof(ControlPlaneHost).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(attribute => attribute.Key == key)?.Value;
        return !string.IsNullOrEmpty(path) && File.Exists(path)
            ? path
            : throw new BenchmarkFailedException(
                $"The {what}'s build ({path ?? "unknown path"}) is missing. Run `dotnet run -c Release --project bench/ControlPlane.Bench`, which builds it first.");
    }

    /// <param name="name">The data directory and log under <paramref name="workDirectory"/>.</param>
    /// <param name="settings">Extra <c>--Key=value</c> settings (the Dapr path's transport).</param>
    /// <param name="port">The API port, when something must know it before the start (a sidecar).</param>
    /// <param name="instancesDirectory">Where instances live when another process runs them.</param>
    /// <param name="requireAdminKey">Wait for this process to write the admin key (a cluster's first silo does; the others do not).</param>
    public static async Task<ControlPlaneHost> StartAsync(
        string controlPlaneDll,
        string workDirectory,
        CancellationToken cancellationToken,
        string name = "controlplane",
        IReadOnlyDictionary<string, string>? settings = null,
        int? port = null,
        string? instancesDirectory = null,
        IReadOnlyList<int>? helperProcessIds = null,
        bool requireAdminKey = true)
    {
        var dataDirectory = Path.Combine(workDirectory, name);
        var logFile = Path.Combine(workDirectory, name + ".log");
        var apiPort = port ?? LoopbackPorts.Ephemeral();
        var process = DetachedProcesses.Start(
            GarnetLaunchTemplate.DotnetHost(),
            [
                controlPlaneDll, "--data-dir", dataDirectory, "--urls", $"http://127.0.0.1:{apiPort}",
                // The rate limiter stays in the path (its cost is measured), with buckets no benchmark empties.
                "--RateLimits:PerKeyPerSecond=1000000", "--RateLimits:PerKeyBurst=1000000",
                "--RateLimits:PerAddressPerSecond=1000000", "--RateLimits:PerAddressBurst=1000000",
                .. (settings ?? new Dictionary<string, string>()).Select(setting => $"--{setting.Key}={setting.Value}"),
            ],
            environment: null,
            Path.GetDirectoryName(controlPlaneDll)!,
            logFile);
        var host = new ControlPlaneHost(
            process, new Uri($"http://127.0.0.1:{apiPort}"), dataDirectory, instancesDirectory ?? Path.Combine(dataDirectory, "instances"), logFile)
        {
            HelperProcessIds = helperProcessIds ?? [],
        };
        try
        {
            await host.WaitUntilReadyAsync(requireAdminKey, cancellationToken);
            return host;
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
    }

    /// <summary>SIGTERM, as a service manager stops it; SIGKILL if it does not exit in time.</summary>
    public async ValueTask DisposeAsync()
    {
        await DetachedProcesses.TerminateAsync(_process, s_stopTimeout);
        _process.Dispose();
    }

    private async Task WaitUntilReadyAsync(bool requireAdminKey, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(10) };
        var keyFile = Path.Combine(DataDirectory, "admin-api-key");
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            if (_process.HasExited)
            {
                throw new BenchmarkFailedException($"The control plane exited with code {_process.ExitCode} while starting. Last lines of {LogFile}:\n{LogTail()}");
            }

            if (await IsReadyAsync(http, cancellationToken) && (File.Exists(keyFile) || !requireAdminKey))
            {
                AdminApiKey = File.Exists(keyFile) ? (await File.ReadAllTextAsync(keyFile, cancellationToken)).Trim() : "";
                return;
            }

            if (Stopwatch.GetElapsedTime(started) > s_readyTimeout)
            {
                throw new BenchmarkFailedException(
                    $"The control plane was not ready within {s_readyTimeout.TotalSeconds:0} s. Last lines of {LogFile}:\n{LogTail()}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
        }
    }

    private static async Task<bool> IsReadyAsync(HttpClient http, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await http.GetAsync(new Uri("/readyz", UriKind.Relative), cancellationToken);
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private string LogTail() => File.Exists(LogFile) ? string.Join('\n', File.ReadLines(LogFile).TakeLast(15)) : "(no log)";
}
