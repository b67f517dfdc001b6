namespace ControlPlane.Tests.Support;

/// <summary>Finds the OS processes of hosted instances by the data directory on their command line.</summary>
public static class HostedProcesses
{
    /// <summary>Process ids whose command line mentions <paramref name="path"/> (e.g. an instance's data directory).</summary>
    public static IReadOnlyList<int> Under(string path)
    {
        var pids = new List<int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(System.IO.Path.GetFileName(directory), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var commandLine = File.ReadAllText(System.IO.Path.Combine(directory, "cmdline")).Replace('\0', ' ');
                if (commandLine.Contains(path, StringComparison.Ordinal) && !IsZombie(directory))
                {
                    pids.Add(pid);
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return pids;
    }

    public static void KillUnder(string path)
    {
        foreach (var pid in Under(path))
        {
            Kill(pid);
        }
    }

    public static void Kill(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            process.Kill();
            process.WaitForExit(5000);
        }
        catch (ArgumentException)
        {
        }
        catch (InvalidOperationException)
        {
        }
    }

    private static bool IsZombie(string procDirectory)
    {
        var stat = File.ReadAllText(System.IO.Path.Combine(procDirectory, "stat"));
        return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
    }
}
