using System.Diagnostics;
using System.Security.Cryptography;

namespace ControlPlane.Bench;

/// <summary>
/// The physical limit: Garnet started by hand exactly as the Local backend starts an instance (same program,
/// arguments, environment, setsid and log file; a fresh data directory and port each time), timed from the
/// moment the process is started until an authenticated PING gets PONG.
/// </summary>
internal sealed class BareGarnet(GarnetLaunchTemplate template, string workDirectory)
{
    // Tighter than the backend's 20 ms: the baseline should show what the machine can do, not what a poll adds.
    private static readonly TimeSpan s_pollInterval = TimeSpan.FromMilliseconds(5);
    private static readonly TimeSpan s_startupTimeout = TimeSpan.FromSeconds(60);
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private int _starts;

    /// <summary>Starts one Garnet, waits for PONG, then kills it and removes its directory.</summary>
    public async Task<TimeSpan> MeasureStartAsync(CancellationToken cancellationToken)
    {
        var root = Path.Combine(workDirectory, $"garnet-{++_starts}");
        var data = Path.Combine(root, "data");
        Directory.CreateDirectory(root, OwnerOnly);
        Directory.CreateDirectory(data, OwnerOnly);
        var log = Path.Combine(root, "process.log");
        var password = NewPassword();
        var port = DetachedProcesses.FreePort();
        var launch = template.Render(port, data, password);

        var started = Stopwatch.GetTimestamp();
        using var process = DetachedProcesses.Start(launch.Executable, launch.Arguments, launch.Environment, root, log);
        try
        {
            while (!await RespPing.AnswersAsync(port, password, TimeSpan.FromSeconds(2), cancellationToken))
            {
                if (process.HasExited)
                {
                    throw new BenchmarkFailedException($"Garnet exited with code {process.ExitCode} during startup. Its log:\n{LogTail(log)}");
                }

                if (Stopwatch.GetElapsedTime(started) > s_startupTimeout)
                {
                    throw new BenchmarkFailedException(
                        $"Garnet did not answer PING on port {port} within {s_startupTimeout.TotalSeconds:0} s. Its log:\n{LogTail(log)}");
                }

                await Task.Delay(s_pollInterval, cancellationToken);
            }

            return Stopwatch.GetElapsedTime(started);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
                await process.WaitForExitAsync(CancellationToken.None);
            }

            DetachedProcesses.KillUnder(root);
            Directory.Delete(root, recursive: true);
        }
    }

    private static string NewPassword() =>
        Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static string LogTail(string log) =>
        File.Exists(log) ? string.Join('\n', File.ReadLines(log).TakeLast(8)) : "(no log)";
}
