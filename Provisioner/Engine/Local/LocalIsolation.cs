using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Provisioner.Deployments;

namespace Provisioner.Local;

/// <summary>An instance's own OS user: created for it, deleted with it.</summary>
internal sealed record InstanceUser(string Name, int Id);

/// <summary>
/// Keeps instances apart from the control plane and from each other: each instance's process runs under an OS user of
/// its own (useradd, with an id from <see cref="LocalBackendOptions.FirstUserId"/>..<see cref="LocalBackendOptions.LastUserId"/>),
/// with file-descriptor and process limits (prlimit) and its data on a disk of its own (<see cref="LocalInstanceDisk"/>).
/// Needs root; decided once, and said at start-up either way.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed partial class LocalIsolation(IOptions<LocalBackendOptions> options, ILogger<LocalIsolation> logger) : IHostedService
{
    /// <summary>The group of every instance's user: files are the user's alone (0700/0600), so the group grants nothing.</summary>
    internal const int NoGroup = 65534;

    private static readonly string[] s_tools =
        ["/usr/sbin/useradd", "/usr/sbin/userdel", "/usr/bin/setpriv", "/usr/bin/prlimit", "/usr/sbin/mkfs.ext4", "/usr/sbin/resize2fs", "/usr/sbin/e2fsck", "/usr/bin/mount", "/usr/bin/umount"];

    // Two creates choosing a user id at once would both pick the lowest free one; useradd would refuse the second, but
    // serialising here keeps that from being the normal path.
    private static readonly Lock s_userCreation = new();

    private readonly Lazy<string?> _unavailable = new(() => WhyUnavailable(options.Value));

    /// <summary>Whether instances run under their own users with limits and disk quotas.</summary>
    public bool Enabled => _unavailable.Value is null;

    private LocalBackendOptions Settings => options.Value;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_unavailable.Value is { } reason)
        {
            LogNotIsolated(reason, Environment.UserName);
            return Task.CompletedTask;
        }

        // Instances' users must pass through every directory above their data (they cannot list them). Said now, and
        // refused when an instance is created there: a host that never creates local instances still starts.
        var instances = Path.GetFullPath(Settings.InstancesDirectory);
        if (ClosedOnTheWayTo(instances) is { } closed)
        {
            LogInstancesUnreachable(instances, closed);
        }

        LogIsolated(Settings.FirstUserId, Settings.LastUserId, Settings.MaxOpenFiles, Settings.MaxProcesses);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Refuses a program instances' users could not run: a directory on the way to <paramref name="path"/> they cannot pass
    /// through, or the path itself they cannot read (a build under /root, which is 0700).
    /// </summary>
    internal void RequireReachable(string path, string what, string errorCode)
    {
        if (!Enabled)
        {
            return;
        }

        if (ClosedOnTheWayTo(path) is { } closed)
        {
            throw new DeploymentFailedException(
                errorCode,
                $"Instances run under users of their own, which cannot reach {what} at {path}: {closed} is closed to other users. " +
                $"Open it (`chmod o+rx {closed}`), move it where other users can reach it, or set {LocalBackendOptions.SectionName}:Isolation to Off.");
        }
    }

    /// <summary>
    /// The first existing directory on the way to <paramref name="path"/> other users cannot pass through, or the path
    /// itself when they cannot enter (a directory) or read (a file) it; null when it is open to them.
    /// </summary>
    private static string? ClosedOnTheWayTo(string path)
    {
        var full = Path.GetFullPath(path);
        var closedAbove = Ancestors(full).Skip(1).Reverse()
            .FirstOrDefault(directory => Directory.Exists(directory) && (File.GetUnixFileMode(directory) & UnixFileMode.OtherExecute) == 0);
        if (closedAbove is not null || !Path.Exists(full))
        {
            return closedAbove;
        }

        var needed = Directory.Exists(full) ? UnixFileMode.OtherExecute : UnixFileMode.OtherRead;
        return (File.GetUnixFileMode(full) & needed) == 0 ? full : null;
    }

    /// <summary>The user of the instance at <paramref name="paths"/>: the recorded one if it still exists, else a new one.</summary>
    internal InstanceUser EnsureUser(LocalInstancePaths paths, string instanceId)
    {
        var name = UserNameFor(paths);
        lock (s_userCreation)
        {
            if (FindUser(name) is { } existing)
            {
                return existing;
            }

            var taken = PasswdEntries().Select(entry => entry.Id).ToHashSet();
            for (var id = Settings.FirstUserId; id <= Settings.LastUserId; id++)
            {
                if (taken.Contains(id))
                {
                    continue;
                }

                var (exitCode, error) = RunAccountTool(
                    "/usr/sbin/useradd",
                    "-u", id.ToString(CultureInfo.InvariantCulture), "-g", NoGroup.ToString(CultureInfo.InvariantCulture),
                    "-M", "-N", "-l", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", "-c", $"hosted instance {instanceId}", name);
                switch (exitCode)
                {
                    case 0:
                        logger.LogInformation("Created user {UserName} ({UserId}) for instance {InstanceId}", name, id, instanceId);
                        return new InstanceUser(name, id);
                    case 4: // the id was taken meanwhile
                        continue;
                    case 9 when FindUser(name) is { } created:
                        return created;
                    default:
                        throw new TransientDeploymentException($"useradd could not create the user of instance {instanceId} (exit code {exitCode}): {error}");
                }
            }
        }

        throw new DeploymentFailedException(
            "no-free-user-id",
            $"No free user id for instance {instanceId} in {Settings.FirstUserId}–{Settings.LastUserId}. " +
            $"Widen {LocalBackendOptions.SectionName}:FirstUserId/LastUserId or delete instances that are no longer needed.");
    }

    /// <summary>Deletes the instance's user, once its process is gone; nothing to do when it never had one.</summary>
    internal static void DeleteUser(LocalInstancePaths paths)
    {
        var name = UserNameFor(paths);
        if (FindUser(name) is null)
        {
            return;
        }

        var (exitCode, error) = RunAccountTool("/usr/sbin/userdel", name);
        if (exitCode is not (0 or 6))
        {
            throw new TransientDeploymentException($"userdel could not delete {name} (exit code {exitCode}): {error}");
        }
    }

    /// <summary>What runs the program: prlimit sets the limits, setpriv becomes the instance's user; both exec, keeping the PID.</summary>
    internal IReadOnlyList<string> LaunchPrefix(InstanceUser user) =>
    [
        "/usr/bin/prlimit",
        $"--nofile={Settings.MaxOpenFiles}:{Settings.MaxOpenFiles}",
        $"--nproc={Settings.MaxProcesses}:{Settings.MaxProcesses}",
        "/usr/bin/setpriv",
        $"--reuid={user.Id}",
        $"--regid={NoGroup}",
        "--clear-groups",
        "--no-new-privs",
        "--",
    ];

    /// <summary>The programs the launch passes through before the instance's own, by their real paths.</summary>
    internal static IEnumerable<string> LaunchPrograms => ["/usr/bin/prlimit", "/usr/bin/setpriv"];

    /// <summary>
    /// Releases what the machine holds for every instance under <paramref name="instancesDirectory"/> (mounted disks,
    /// users) once their processes are gone: for decommissioning a directory, and for tests that throw one away.
    /// </summary>
    public static void ReleaseAll(string instancesDirectory)
    {
        if (!Directory.Exists(instancesDirectory))
        {
            return;
        }

        foreach (var directory in Directory.EnumerateDirectories(instancesDirectory).Where(path => !Path.GetFileName(path).StartsWith('.')))
        {
            var paths = new LocalInstancePaths(Path.GetDirectoryName(directory)!, Path.GetFileName(directory));
            LocalInstanceDisk.Release(paths);
            if (Environment.IsPrivilegedProcess)
            {
                DeleteUser(paths);
            }
        }
    }

    /// <summary>A name unique to the instance's directory on this machine (two control planes may both host an "inst-1").</summary>
    internal static string UserNameFor(LocalInstancePaths paths) =>
        "cpi-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(paths.Root)))[..16];

    private static InstanceUser? FindUser(string name) =>
        PasswdEntries().FirstOrDefault(entry => entry.Name == name);

    private static List<InstanceUser> PasswdEntries() =>
        File.ReadLines("/etc/passwd")
            .Select(line => line.Split(':'))
            .Where(fields => fields.Length > 2 && int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out _))
            .Select(fields => new InstanceUser(fields[0], int.Parse(fields[2], CultureInfo.InvariantCulture)))
            .ToList();

    private static string? WhyUnavailable(LocalBackendOptions settings)
    {
        if (settings.Isolation == LocalIsolationMode.Off)
        {
            return $"{LocalBackendOptions.SectionName}:Isolation is Off";
        }

        if (!Environment.IsPrivilegedProcess)
        {
            return "the control plane does not run as root, so it cannot switch users or mount instances' disks";
        }

        return s_tools.FirstOrDefault(tool => !File.Exists(tool)) is { } missing
            ? $"{missing} is missing (apt-get install passwd util-linux mount e2fsprogs)"
            : null;
    }

    private static IEnumerable<string> Ancestors(string path)
    {
        for (var directory = path; directory is not null; directory = Path.GetDirectoryName(directory))
        {
            yield return directory;
        }
    }

    /// <summary>
    /// useradd or userdel, again while another process holds the account files' lock ("cannot lock /etc/passwd; try
    /// again later", exit code 1, at once rather than waiting): other control planes and their tests on the machine
    /// create and delete users too. Gives up after about 30 s.
    /// </summary>
    internal static (int ExitCode, string Error) RunAccountTool(string program, params string[] arguments)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var (exitCode, error) = Run(program, arguments);
            if (!(exitCode == 1 && error.Contains("lock", StringComparison.OrdinalIgnoreCase)) || DateTime.UtcNow >= deadline)
            {
                return (exitCode, error);
            }

            Thread.Sleep(Random.Shared.Next(20, 200));
        }
    }

    internal static (int ExitCode, string Error) Run(string program, params string[] arguments)
    {
        var startInfo = new System.Diagnostics.ProcessStartInfo(program) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = System.Diagnostics.Process.Start(startInfo)!;
        var error = process.StandardError.ReadToEndAsync();
        _ = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, error.Result.Trim());
    }

    /// <summary>Gives <paramref name="path"/> to <paramref name="userId"/> without following a symbolic link.</summary>
    internal static void GiveTo(string path, int userId)
    {
        if (UnixFileOwner.Change(path, userId, NoGroup) != 0)
        {
            throw new TransientDeploymentException($"Could not give {path} to user {userId} (errno {Marshal.GetLastPInvokeError()}).");
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message =
        "Hosted instances are NOT isolated: {Reason}. They run as this control plane's user ({User}), without a user of their own, " +
        "resource limits or disk quotas; run the control plane as root for those")]
    private partial void LogNotIsolated(string reason, string user);

    [LoggerMessage(Level = LogLevel.Warning, Message =
        "Instances' own users cannot pass through {Closed} to reach their data in {InstancesDirectory}: creating an instance there fails until " +
        "`chmod o+x` opens it to passing through (not listing), another Provisioner:Local:InstancesDirectory is chosen, or Provisioner:Local:Isolation is Off")]
    private partial void LogInstancesUnreachable(string instancesDirectory, string closed);

    [LoggerMessage(Level = LogLevel.Information, Message =
        "Hosted instances run under users of their own (ids {FirstUserId}..{LastUserId}), with at most {MaxOpenFiles} open files and {MaxProcesses} threads, on disks of their size's DiskGb")]
    private partial void LogIsolated(int firstUserId, int lastUserId, int maxOpenFiles, int maxProcesses);
}
