using System.Diagnostics;
using System.Security.Cryptography;

namespace ControlPlane.Bench;

/// <summary>One bare start: until PONG, and the CPU Garnet and this program (polling) used meanwhile.</summary>
internal sealed record BareStart(TimeSpan ToPong, CpuUse Cpu);

/// <summary>Garnet processes started at once: each one's start-to-PONG, and from the first start until the last answered.</summary>
internal sealed record ConcurrentStarts(IReadOnlyList<TimeSpan> Each, TimeSpan FirstStartToAllAnswering, CpuUse Cpu);

/// <summary>
/// The physical limit: Garnet started by hand exactly as the Local backend starts an instance (same program,
/// arguments, environment, setsid and log file; a fresh data directory and port each time), timed from the
/// moment the process is started until an authenticated PING gets PONG.
/// </summary>
/// <param name="pollInterval">The pause between two PINGs, as the control plane's clients pause between two polls.</param>
internal sealed class BareGarnet(GarnetLaunchTemplate template, string workDirectory, TimeSpan pollInterval)
{
    private int _starts;

    /// <summary>Starts one Garnet, waits for PONG, then kills it and removes its directory.</summary>
    public async Task<BareStart> MeasureStartAsync(CancellationToken cancellationToken)
    {
        var clientCpu = ProcessCpu.OfThisProcess();
        await using var garnet = Launch();
        var toPong = await garnet.WaitUntilAnsweringAsync(pollInterval, cancellationToken);
        return new BareStart(toPong, new CpuUse(ProcessCpu.Of(garnet.ProcessId), Host: null, ProcessCpu.OfThisProcess() - clientCpu));
    }

    /// <summary>Starts <paramref name="count"/> at once and keeps every one running until all answer, as hosted instances would.</summary>
    public async Task<ConcurrentStarts> MeasureConcurrentStartsAsync(int count, CancellationToken cancellationToken)
    {
        var launched = new List<RunningGarnet>(count);
        try
        {
            var clientCpu = ProcessCpu.OfThisProcess();
            var started = Stopwatch.GetTimestamp();
            for (var index = 0; index < count; index++)
            {
                launched.Add(Launch());
            }

            var each = await Task.WhenAll(launched.Select(garnet => garnet.WaitUntilAnsweringAsync(pollInterval, cancellationToken)));
            var all = Stopwatch.GetElapsedTime(started);
            var garnetCpu = launched.Select(garnet => ProcessCpu.Of(garnet.ProcessId) ?? TimeSpan.Zero).Aggregate(TimeSpan.Zero, (sum, cpu) => sum + cpu);
            return new ConcurrentStarts(each, all, new CpuUse(garnetCpu, Host: null, ProcessCpu.OfThisProcess() - clientCpu));
        }
        finally
        {
            foreach (var garnet in launched)
            {
                await garnet.DisposeAsync();
            }
        }
    }

    private RunningGarnet Launch()
    {
        var root = Path.Combine(workDirectory, $"garnet-{Interlocked.Increment(ref _starts)}");
        var data = Path.Combine(root, "data");
        Directory.CreateDirectory(root, RunningGarnet.OwnerOnly);
        Directory.CreateDirectory(data, RunningGarnet.OwnerOnly);
        var password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var port = LoopbackPorts.ForInstance();
        var launch = template.Render(port, data, password);
        var log = Path.Combine(root, "process.log");
        var started = Stopwatch.GetTimestamp();
        var process = DetachedProcesses.Start(launch.Executable, launch.Arguments, launch.Environment, root, log);
        return new RunningGarnet(process, started, root, port, password, log);
    }

    private sealed class RunningGarnet(Process process, long startedAt, string root, int port, string password, string log) : IAsyncDisposable
    {
        public const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        private static readonly TimeSpan s_startupTimeout = TimeSpan.FromSeconds(90);

        public int ProcessId => process.Id;

        /// <summary>The time from starting the process until it answered an authenticated PING.</summary>
        public async Task<TimeSpan> WaitUntilAnsweringAsync(TimeSpan pollInterval, CancellationToken cancellationToken)
        {
            while (!await RespPing.AnswersAsync(port, password, TimeSpan.FromSeconds(2), cancellationToken))
            {
                if (process.HasExited)
                {
                    throw new BenchmarkFailedException($"Garnet exited with code {process.ExitCode} during startup. Its log:\n{LogTail()}");
                }

                if (Stopwatch.GetElapsedTime(startedAt) > s_startupTimeout)
                {
                    throw new BenchmarkFailedException(
                        $"Garnet did not answer PING on port {port} within {s_startupTimeout.TotalSeconds:0} s. Its log:\n{LogTail()}");
                }

                await Task.Delay(pollInterval, cancellationToken);
            }

            return Stopwatch.GetElapsedTime(startedAt);
        }

        /// <summary>Kills the process and removes its directory.</summary>
        public async ValueTask DisposeAsync()
        {
            if (!process.HasExited)
            {
                process.Kill();
                await process.WaitForExitAsync(CancellationToken.None);
            }

            process.Dispose();
            DetachedProcesses.KillUnder(root);
            Directory.Delete(root, recursive: true);
        }

        private string LogTail() => File.Exists(log) ? string.Join('\n', File.ReadLines(log).TakeLast(8)) : "(no log)";
    }
}
