using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace ControlPlane.Tests.Support;

/// <summary>
/// The real control plane as a separate OS process (<c>dotnet ControlPlane.dll</c>), as an operator runs
/// it: stop it gracefully, kill it with SIGKILL, start it again over the same data directory.
/// </summary>
public sealed class ControlPlaneProcess : IAsyncDisposable
{
    private readonly ConcurrentQueue<string> _output = new();
    private readonly string _dataDirectory;
    private readonly (int First, int Last) _instancePorts;
    private readonly IReadOnlyDictionary<string, string> _settings;
    private Process? _process;

    /// <param name="settings">More configuration (e.g. cluster mode's), passed as <c>--Key=value</c>.</param>
    public ControlPlaneProcess(string dataDirectory, (int First, int Last) instancePorts, IReadOnlyDictionary<string, string>? settings = null)
    {
        _dataDirectory = dataDirectory;
        _instancePorts = instancePorts;
        _settings = settings ?? new Dictionary<string, string>();
    }

    public int Port { get; private set; }

    public int ProcessId => _process?.Id ?? 0;

    /// <summary>Everything the host printed, across restarts.</summary>
    public IReadOnlyCollection<string> Output => _output;

    public Uri BaseAddress => new($"http://127.0.0.1:{Port}");

    public static string BuildOutput
    {
        get
        {
            // tests/ControlPlane.Tests/bin/<Configuration>/net10.0 → ControlPlane/bin/<Configuration>/net10.0
            var testOutput = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
            var configuration = testOutput.Parent!.Name;
            var root = testOutput;
            while (root is not null && !File.Exists(Path.Combine(root.FullName, "ControlPlane.slnx")))
            {
                root = root.Parent;
            }

            return Path.Combine(root?.FullName ?? throw new InvalidOperationException("Repository root not found."), "ControlPlane", "bin", configuration, "net10.0");
        }
    }

    public async Task StartAsync()
    {
        Port = Ports.Free();
        var startInfo = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = BuildOutput,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[]
        {
            Path.Combine(BuildOutput, "ControlPlane.dll"),
            "--data-dir", _dataDirectory,
            "--urls", BaseAddress.ToString(),
            "--Reconcile:Interval=00:00:02",
            $"--Provisioner:Local:FirstPort={_instancePorts.First.ToString(CultureInfo.InvariantCulture)}",
            $"--Provisioner:Local:LastPort={_instancePorts.Last.ToString(CultureInfo.InvariantCulture)}",
        }.Concat(_settings.Select(setting => $"--{setting.Key}={setting.Value}")))
        {
            startInfo.ArgumentList.Add(argument);
        }

        _process = Process.Start(startInfo)!;
        _process.OutputDataReceived += (_, line) => Record(line.Data);
        _process.ErrorDataReceived += (_, line) => Record(line.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        await WaitUntilReadyAsync();
    }

    public ControlPlaneApi CreateAdminApi() => CreateApi(File.ReadAllText(Path.Combine(_dataDirectory, "admin-api-key")).Trim());

    public ControlPlaneApi CreateApi(string apiKey, TimeSpan? timeout = null) =>
        ControlPlaneApi.WithKey(new HttpClient { BaseAddress = BaseAddress, Timeout = timeout ?? TimeSpan.FromSeconds(100) }, apiKey);

    /// <summary>SIGTERM and wait: a normal stop.</summary>
    public async Task StopAsync()
    {
        if (_process is { HasExited: false } process)
        {
            using (var terminate = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await terminate.WaitForExitAsync();
            }

            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }
    }

    /// <summary>SIGKILL: no shutdown code runs at all.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill();
            await process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process?.Dispose();
    }

    private async Task WaitUntilReadyAsync()
    {
        using var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            if (_process!.HasExited)
            {
                await _process.WaitForExitAsync();
                throw new InvalidOperationException($"The control plane exited with code {_process.ExitCode}:\n{string.Join('\n', _output)}");
            }

            try
            {
                using var response = await client.GetAsync("/readyz");
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"The control plane did not become ready:\n{string.Join('\n', _output)}");
            }

            await Task.Delay(100);
        }
    }

    private void Record(string? line)
    {
        if (line is not null)
        {
            _output.Enqueue(line);
        }
    }
}
