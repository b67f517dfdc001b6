using System.Globalization;

namespace ControlPlane.Hosting;

/// <summary>
/// The data directory holds secrets (the admin key, the embedded database with instance credentials, data-protection
/// keys, the instances' data), so they are checked at every start, not only when they are created: access by anyone
/// but the owner is taken away from the directories and from the files' group (and logged), except that others may
/// pass through the data directory and <c>instances/</c> (0711, never list them: hosted instances' own users reach their
/// data that way); a secret file every user could read, one owned by another user, or a symbolic link in place of one,
/// stops the start, because what it holds may already have been read or replaced and must be checked and rotated, not
/// just hidden again.
/// </summary>
public static class DataDirectoryPermissions
{
    private const UnixFileMode Group = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute;
    private const UnixFileMode Others = UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>The directories others may pass through (not list): the way to instances' data.</summary>
    private static readonly string[] s_passablePaths = ["", "instances"];

    /// <summary>The paths in the data directory that hold secrets, file or directory; those that exist are checked.</summary>
    private static readonly string[] s_secretPaths =
    [
        "",
        "controlplane.db",
        "controlplane.db-wal",
        "controlplane.db-shm",
        "admin-api-key",
        "secret-keys",
        "data-protection-keys",
        "instances",
    ];

    /// <summary>Answers what it corrected; throws <see cref="StartupFailedException"/> when a secret file was open to every user.</summary>
    public static IReadOnlyList<string> Enforce(DataDirectory directory)
    {
        if (OperatingSystem.IsWindows())
        {
            return [];
        }

        var corrected = new List<string>();
        int? owner = OperatingSystem.IsLinux() ? Provisioner.Local.UnixFileOwner.Current : null;
        var passable = s_passablePaths.Select(directory.File).ToHashSet(StringComparer.Ordinal);
        var keyRing = directory.File("data-protection-keys");
        var keys = Directory.Exists(keyRing) ? Directory.GetFiles(keyRing) : [];
        foreach (var path in s_secretPaths.Select(directory.File).Concat(keys))
        {
            var info = new FileInfo(path);
            var isDirectory = Directory.Exists(path);
            if (!isDirectory && !info.Exists)
            {
                continue;
            }

            // The directory itself may be a link to a volume; what is inside it must not point elsewhere.
            if (path != directory.Path && (info.Attributes & FileAttributes.ReparsePoint) != 0)
            {
                throw new StartupFailedException($"{path} is a symbolic link; the data directory's secrets must be plain files and directories of their own. Replace it with the file it points to.");
            }

            if (OperatingSystem.IsLinux() && Provisioner.Local.UnixFileOwner.Of(path) is { } fileOwner && fileOwner != owner)
            {
                throw new StartupFailedException(
                    $"{path} belongs to user {fileOwner}, not to the user the control plane runs as ({owner}), so someone else may have written, " +
                    $"replaced or read it. Check where it came from (rotate what it holds if in doubt), then `chown -R {owner} {path}` and start again.");
            }

            // A directory open to others shows names, not contents: its files are checked one by one.
            var mode = File.GetUnixFileMode(path);
            if (!isDirectory && (mode & (UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0)
            {
                throw new StartupFailedException(
                    $"{path} is open to every user on this machine (mode {Octal(mode)}), so the secrets in it may have been read. " +
                    $"Rotate them (for the admin key: delete the file and start again to get a new one; for instance credentials: rotate each instance's), " +
                    $"then `chmod 600 {path}` and start again.");
            }

            var taken = passable.Contains(path) ? Group | UnixFileMode.OtherRead | UnixFileMode.OtherWrite : Group | Others;
            if ((mode & taken) != 0)
            {
                File.SetUnixFileMode(path, mode & ~taken);
                corrected.Add($"{path}: {Octal(mode)} → {Octal(File.GetUnixFileMode(path))}");
            }

            if (passable.Contains(path) && isDirectory)
            {
                File.SetUnixFileMode(path, File.GetUnixFileMode(path) | UnixFileMode.OtherExecute);
            }
        }

        return corrected;
    }

    private static string Octal(UnixFileMode mode) => Convert.ToString((int)mode, 8).PadLeft(4, '0').ToString(CultureInfo.InvariantCulture);
}

/// <summary>Logs, once the host runs, what <see cref="DataDirectoryPermissions.Enforce"/> corrected before it could.</summary>
public sealed partial class CorrectedPermissionsLog(IReadOnlyList<string> corrected, ILogger<CorrectedPermissionsLog> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var correction in corrected)
        {
            LogCorrected(correction);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Warning, Message = "Took group access away from a secret in the data directory: {Correction}")]
    private partial void LogCorrected(string correction);
}
