using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace ControlPlane.Bench;

/// <summary>
/// Starts programs the way the Local backend starts an instance (its own session through setsid, stdin
/// from /dev/null, stdout and stderr appended to a log file by the shell), and finds and ends them again
/// by the directory on their command line, since they do not die with the benchmark.
/// </summary>
/// <remarks>
/// Written apart from the Provisioner's <c>LocalProcesses</c> on purpose: the baseline must not share code
/// with the system it measures, or a slower launcher would slow both sides and hide in the ratio.
/// </remarks>
internal static partial class DetachedProcesses
{
    private const int SigKill = 9;
    private const int SigTerm = 15;
    private const string SetsidPath = "/usr/bin/setsid";

    /// <summary>
    /// Starts <paramref name="executable"/>. Null <paramref name="environment"/> inherits ours; otherwise the
    /// child gets exactly that environment. setsid and sh both exec, so the process is the program itself.
    /// </summary>
    public static Process Start(
        string executable,
        IEnumerable<string> arguments,
        IReadOnlyDictionary<string, string>? environment,
        string workingDirectory,
        string logFile)
    {
        var startInfo = new ProcessStartInfo(SetsidPath)
        {
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        startInfo.ArgumentList.Add("/bin/sh");
        startInfo.ArgumentList.Add("-c");
        startInfo.ArgumentList.Add("log=\"$1\"; shift; exec \"$@\" </dev/null >>\"$log\" 2>&1");
        startInfo.ArgumentList.Add("sh");
        startInfo.ArgumentList.Add(logFile);
        startInfo.ArgumentList.Add(executable);
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        if (environment is not null)
        {
            startInfo.Environment.Clear();
            foreach (var (name, value) in environment)
            {
                startInfo.Environment[name] = value;
            }
        }

        return Process.Start(startInfo) ?? throw new BenchmarkFailedException($"Could not start {executable}.");
    }

    /// <summary>SIGTERM, then SIGKILL if <paramref name="process"/> has not exited within <paramref name="grace"/>.</summary>
    public static async Task TerminateAsync(Process process, TimeSpan grace)
    {
        if (process.HasExited)
        {
            return;
        }

        _ = Kill(process.Id, SigTerm);
        using var timeout = new CancellationTokenSource(grace);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            await process.WaitForExitAsync(CancellationToken.None);
        }
    }

    /// <summary>
    /// SIGKILLs every process whose command line has an argument at or below <paramref name="directory"/>
    /// (hosted instances name their data directory; the control plane its --data-dir), and waits until they are gone.
    /// </summary>
    public static void KillUnder(string directory)
    {
        var deadline = Stopwatch.GetTimestamp() + 10 * Stopwatch.Frequency;
        while (Under(directory) is { Count: > 0 } survivors)
        {
            foreach (var processId in survivors)
            {
                _ = Kill(processId, SigKill);
            }

            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new BenchmarkFailedException(
                    $"Processes {string.Join(", ", survivors)} under {directory} survive SIGKILL; end them by hand.");
            }

            Thread.Sleep(50);
        }
    }

    /// <summary>Live processes with an argument at or below <paramref name="directory"/>.</summary>
    public static List<int> Under(string directory)
    {
        var prefix = directory.TrimEnd('/') + "/";
        var found = new List<int>();
        foreach (var procDirectory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(procDirectory), NumberStyles.None, CultureInfo.InvariantCulture, out var processId)
                || processId == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var arguments = File.ReadAllText(Path.Combine(procDirectory, "cmdline")).Split('\0');
                var stat = File.ReadAllText(Path.Combine(procDirectory, "stat"));
                var zombie = stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
                if (!zombie && arguments.Any(argument => argument == prefix[..^1] || argument.StartsWith(prefix, StringComparison.Ordinal)))
                {
                    found.Add(processId);
                }
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
            {
                // The process ended while we looked.
            }
        }

        return found;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int processId, int signal);
}
