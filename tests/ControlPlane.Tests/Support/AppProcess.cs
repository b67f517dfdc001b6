using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace ControlPlane.Tests.Support;

/// <summary>
/// One of this repository's apps as a separate OS process (<c>dotnet App.dll</c> from its build output), as an
/// operator runs it: on a port fixed for its lifetime, stopped gracefully, killed with SIGKILL, started again.
/// </summary>
public class AppProcess : IAsyncDisposable
{
    private readonly ConcurrentQueue<string> _output = new();
    private readonly string _project;
    private readonly string _readinessPath;
    private Process? _process;

    /// <param name="project">The project folder and assembly name, e.g. <c>ControlPlane</c> or <c>Provisioner</c>.</param>
    protected AppProcess(string project, string readinessPath)
    {
        _project = project;
        _readinessPath = readinessPath;
        Port = Ports.Free();
    }

    public int Port { get; }

    public int ProcessId => _process?.Id ?? 0;

    /// <summary>Everything the process printed, across restarts.</summary>
    public IReadOnlyCollection<string> Output => _output;

    public Uri BaseAddress => new($"http://127.0.0.1:{Port}");

    /// <summary>Environment variables of the process, set before <see cref="StartAsync"/>.</summary>
    public Dictionary<string, string> Environment { get; } = [];

    /// <summary>Settings passed as <c>--Key=value</c>, set before <see cref="StartAsync"/>.</summary>
    public Dictionary<string, string> Settings { get; } = [];

    /// <summary>The build output of <paramref name="project"/> in the configuration these tests were built in.</summary>
    public static string BuildOutputOf(string project)
    {
        // tests/ControlPlane.Tests/bin/<Configuration>/net10.0 → <project>/bin/<Configuration>/net10.0
        var testOutput = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = testOutput.Parent!.Name;
        var root = testOutput;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "ControlPlane.slnx")))
        {
            root = root.Parent;
        }

        return Path.Combine(root?.FullName ?? throw new InvalidOperationException("Repository root not found."), project, "bin", configuration, "net10.0");
    }

    public async Task StartAsync()
    {
        var output = BuildOutputOf(_project);
        var startInfo = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = output,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add(Path.Combine(output, _project + ".dll"));
        foreach (var argument in Arguments())
        {
            startInfo.ArgumentList.Add(argument);
        }

        startInfo.ArgumentList.Add("--urls");
        startInfo.ArgumentList.Add(BaseAddress.ToString());
        foreach (var (key, value) in Settings)
        {
            startInfo.ArgumentList.Add($"--{key}={value}");
        }

        foreach (var (name, value) in Environment)
        {
            startInfo.Environment[name] = value;
        }

        _process = Process.Start(startInfo)!;
        _process.OutputDataReceived += (_, line) => Record(line.Data);
        _process.ErrorDataReceived += (_, line) => Record(line.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        await WaitUntilReadyAsync();
    }

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
        GC.SuppressFinalize(this);
    }

    /// <summary>Arguments after the assembly, before <c>--urls</c> and <see cref="Settings"/>.</summary>
    protected virtual IEnumerable<string> Arguments() => [];

    private async Task WaitUntilReadyAsync()
    {
        using var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            if (_process!.HasExited)
            {
                await _process.WaitForExitAsync();
                throw new InvalidOperationException($"The {_project} process exited with code {_process.ExitCode}:\n{string.Join('\n', _output)}");
            }

            try
            {
                using var response = await client.GetAsync(new Uri(_readinessPath, UriKind.Relative));
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
                throw new TimeoutException($"The {_project} process did not become ready:\n{string.Join('\n', _output)}");
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
