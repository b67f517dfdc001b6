using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace Provisioner.Local;

/// <summary>A process found serving an instance's data directory.</summary>
/// <param name="Recorded">False for a process deployment.json does not name (a start interrupted before it was recorded).</param>
/// <param name="Executable">The program it runs, when known: what keeps it from being mistaken for another.</param>
internal sealed record LocalProcess(int ProcessId, long StartTime, bool Recorded, string? Executable = null);

/// <summary>
/// The Linux process operations the Local backend needs: start a detached process, tell whether a PID
/// is still the process we started, and signal it. Everything goes by PID and /proc rather than by
/// <see cref="Process"/> objects, because instances outlive the control plane that started them.
/// </summary>
[SupportedOSPlatform("linux")]
internal static partial class LocalProcesses
{
    private const int SigKill = 9;
    private const int SigTerm = 15;
    private const int SigCont = 18;
    private const string SetsidPath = "/usr/bin/setsid";
    private const string ShellPath = "/bin/sh";

    /// <summary>The control plane's own environment may hold its secrets; an instance only inherits these.</summary>
    private static readonly string[] InheritedVariables = ["PATH", "HOME", "TMPDIR", "LANG", "DOTNET_ROOT"];

    /// <summary>
    /// Starts <paramref name="command"/> in a session of its own (setsid), so Ctrl+C in the control plane's
    /// terminal, its exit or its kill -9 do not reach the instance. Stdout/stderr are appended to
    /// <paramref name="logFile"/> by the shell (as the control plane's user, before <paramref name="prefix"/> drops to the
    /// instance's) rather than piped to us: a pipe would break (SIGPIPE) when the control plane exits. O_APPEND lets the
    /// log be truncated while the process writes. Stdin is a pipe that carries the command's secrets and is then closed.
    /// setsid, sh and the prefix's programs all exec, so the PID returned is the instance's own.
    /// </summary>
    public static Process Start(LaunchCommand command, IReadOnlyList<string> prefix, string workingDirectory, string logFile)
    {
        if (!File.Exists(SetsidPath))
        {
            throw new Deployments.DeploymentFailedException(
                "setsid-missing",
                $"Cannot start instances: {SetsidPath} is missing. Install util-linux (apt-get install util-linux).");
        }

        var startInfo = new ProcessStartInfo(SetsidPath)
        {
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
            RedirectStandardInput = true,
        };
        startInfo.ArgumentList.Add("/bin/sh");
        startInfo.ArgumentList.Add("-c");
        // umask 077: the log, and every file the instance writes, is its owner's alone.
        startInfo.ArgumentList.Add("umask 077; log=\"$1\"; shift; exec \"$@\" >>\"$log\" 2>&1");
        startInfo.ArgumentList.Add("sh");
        startInfo.ArgumentList.Add(logFile);
        foreach (var program in prefix)
        {
            startInfo.ArgumentList.Add(program);
        }

        startInfo.ArgumentList.Add(command.Executable);
        foreach (var argument in command.Arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        startInfo.Environment.Clear();
        foreach (var name in InheritedVariables)
        {
            if (Environment.GetEnvironmentVariable(name) is { } value)
            {
                startInfo.Environment[name] = value;
            }
        }

        foreach (var (name, value) in command.Environment)
        {
            startInfo.Environment[name] = value;
        }

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException("Process.Start returned no process.");
        try
        {
            // Far below a pipe's buffer, so this never waits for the process to read.
            process.StandardInput.Write(command.Secrets.Value);
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The process exited before reading its secrets; the wait step reports how, from its log.
        }

        return process;
    }

    /// <summary>
    /// The process <paramref name="processId"/> if it is still the one that started at <paramref name="startTime"/>,
    /// serves <paramref name="dataDirectory"/> and runs <paramref name="executable"/> (or is still on its way there
    /// through setsid and sh); false for an exited process, a zombie, a reused PID, or another program.
    /// </summary>
    public static bool IsSameProcess(int processId, long startTime, string dataDirectory, string? executable = null) =>
        ReadStartTime(processId) == startTime
        && ServesDirectory(processId, dataDirectory) != false
        && (executable is null || ReadExecutable(processId) is not { } running || running == Canonical(executable) || IsLaunchChain(running));

    /// <summary>The real path of the program a process runs (its /proc/&lt;pid&gt;/exe); null when it cannot be read.</summary>
    public static string? ReadExecutable(int processId)
    {
        try
        {
            return new FileInfo($"/proc/{processId}/exe").LinkTarget;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The path with every symbolic link resolved (realpath(3)), as /proc/&lt;pid&gt;/exe shows a program.</summary>
    public static string Canonical(string path)
    {
        var resolved = RealPath(path, IntPtr.Zero);
        if (resolved == IntPtr.Zero)
        {
            return Path.GetFullPath(path);
        }

        try
        {
            return Marshal.PtrToStringUTF8(resolved) ?? path;
        }
        finally
        {
            Free(resolved);
        }
    }

    /// <summary>Field 22 (starttime) of /proc/&lt;pid&gt;/stat; null when the process is gone or a zombie.</summary>
    public static long? ReadStartTime(int processId)
    {
        string stat;
        try
        {
            stat = File.ReadAllText($"/proc/{processId}/stat");
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            return null;
        }

        // The command name (field 2) may contain spaces and parentheses: fields after it start past the last ')'.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        if (fields[0] is "Z" or "X")
        {
            return null;
        }

        return long.Parse(fields[19], CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Finds a live process that runs <paramref name="executable"/> with <paramref name="dataDirectory"/> as an argument:
    /// a process nobody recorded because its start was interrupted. Anything else naming the directory (a backup's
    /// <c>tar</c>, a person's <c>tail</c>) is never taken for the instance. Scans all of /proc: only called when a
    /// launch was pending.
    /// </summary>
    public static LocalProcess? FindServing(string dataDirectory, string executable)
    {
        var product = Canonical(executable);
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var processId)
                || processId == Environment.ProcessId
                || ServesDirectory(processId, dataDirectory) != true
                || ReadExecutable(processId) != product
                || ReadStartTime(processId) is not { } startTime)
            {
                continue;
            }

            return new LocalProcess(processId, startTime, Recorded: false, product);
        }

        return null;
    }

    /// <summary>SIGTERM, then SIGKILL after <paramref name="gracePeriod"/>. Works for processes that are not our children.</summary>
    public static async Task TerminateAsync(LocalProcess process, string dataDirectory, TimeSpan gracePeriod, CancellationToken cancellationToken)
    {
        if (!IsSameProcess(process.ProcessId, process.StartTime, dataDirectory, process.Executable))
        {
            return;
        }

        // A stopped process (SIGSTOP, a debugger) only acts on SIGTERM once it runs again.
        _ = Kill(process.ProcessId, SigTerm);
        _ = Kill(process.ProcessId, SigCont);
        if (await WaitForExitAsync(process, dataDirectory, gracePeriod, cancellationToken))
        {
            return;
        }

        _ = Kill(process.ProcessId, SigKill);
        if (!await WaitForExitAsync(process, dataDirectory, TimeSpan.FromSeconds(10), cancellationToken))
        {
            throw new Deployments.TransientDeploymentException($"Process {process.ProcessId} is still running after SIGKILL.");
        }
    }

    private static async Task<bool> WaitForExitAsync(LocalProcess process, string dataDirectory, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (IsSameProcess(process.ProcessId, process.StartTime, dataDirectory, process.Executable))
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(25), cancellationToken);
        }

        return true;
    }

    /// <summary>
    /// Null when the command line cannot be read or is empty, which happens for a moment inside execve (the
    /// new image's arguments are not mapped yet); the start time alone then vouches for the process.
    /// </summary>
    private static bool? ServesDirectory(int processId, string dataDirectory)
    {
        byte[] commandLine;
        try
        {
            commandLine = File.ReadAllBytes($"/proc/{processId}/cmdline");
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException or IOException or UnauthorizedAccessException)
        {
            return null;
        }

        if (commandLine.Length == 0)
        {
            return null;
        }

        // Arguments are NUL-separated. A whole-argument match (the launch template passes {dataDir} on its
        // own) keeps /x/data2, or a person's `tail /x/data/AOF/…`, from passing for the instance.
        return System.Text.Encoding.UTF8.GetString(commandLine).Split('\0').Contains(dataDirectory, StringComparer.Ordinal);
    }

    private static bool IsLaunchChain(string running) =>
        running == Canonical(SetsidPath) || running == Canonical(ShellPath) || LocalIsolation.LaunchPrograms.Any(program => running == Canonical(program));

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr RealPath(string path, IntPtr resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(IntPtr pointer);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int processId, int signal);
}
