namespace ControlPlane.Hosting;

/// <summary>
/// Holds an exclusive lock on <c>&lt;dataDir&gt;/controlplane.lock</c> for the life of the process, so a
/// second control plane started on the same data directory stops at once instead of running a second
/// silo over the same tenants, instances and processes. The kernel releases it when the process dies,
/// even by <c>kill -9</c>.
/// </summary>
public sealed class DataDirectoryLock : IDisposable
{
    private const string FileName = "controlplane.lock";
    private const string HolderFileName = "controlplane.pid";

    private readonly FileStream _file;

    private DataDirectoryLock(FileStream file) => _file = file;

    public static DataDirectoryLock Acquire(string dataDirectory)
    {
        var path = Path.Combine(dataDirectory, FileName);
        FileStream file;
        try
        {
            // FileShare.None is an exclusive flock(2) on Linux: held until this stream closes or the process exits.
            file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException exception)
        {
            throw new StartupFailedException(
                $"The data directory {dataDirectory} is in use by {ReadHolder(dataDirectory)}. Stop that control plane, or start this one with another --data-dir.",
                exception);
        }

        // Beside the lock, not in it: a locked file cannot be read by the process that is refused.
        Provisioner.Local.ExclusiveFile.Replace(Path.Combine(dataDirectory, HolderFileName), $"{Environment.ProcessId}\n");
        return new DataDirectoryLock(file);
    }

    public void Dispose() => _file.Dispose();

    private static string ReadHolder(string dataDirectory)
    {
        try
        {
            return int.TryParse(File.ReadAllText(Path.Combine(dataDirectory, HolderFileName)).Trim(), out var pid) ? $"process {pid}" : "another process";
        }
        catch (IOException)
        {
            return "another process";
        }
    }
}

/// <summary>The control plane cannot start for a reason its operator can fix; the message says how.</summary>
public sealed class StartupFailedException(string message, Exception? inner = null) : Exception(message, inner);
