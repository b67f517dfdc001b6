using System.Globalization;
using System.Runtime.Versioning;
using Provisioner.Deployments;

namespace Provisioner.Local;

/// <summary>How full an instance's disk is.</summary>
internal sealed record DiskUsage(long UsedBytes, long TotalBytes)
{
    /// <summary>
    /// Full enough that the server's next segment or checkpoint does not fit (Garnet allocates its log in segments of
    /// tens of MB: measured, a 1 GiB disk refused writes with 16 MB still free).
    /// </summary>
    public bool IsFull => TotalBytes - UsedBytes < Math.Max(TotalBytes / 50, 64L * 1024 * 1024);

    public override string ToString() => $"{Megabytes(UsedBytes)} of {Megabytes(TotalBytes)} MB";

    private static string Megabytes(long bytes) => (bytes / (1024 * 1024)).ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// An instance's data directory is a file system of its own: an ext4 image of the size's DiskGb (<c>disk.img</c> beside
/// the data, sparse, so it takes only what is written) loop-mounted on <c>data/</c>. The kernel refuses writes past it
/// (ENOSPC), so an instance can fill its own disk but never the machine's. A size that grows grows the image; a smaller
/// size keeps the larger disk (data is never cut).
/// </summary>
[SupportedOSPlatform("linux")]
internal static class LocalInstanceDisk
{
    private const long Gibibyte = 1024L * 1024 * 1024;

    public static string ImageOf(LocalInstancePaths paths) => Path.Combine(paths.Root, "disk.img");

    /// <summary>
    /// Mounts the instance's disk on its data directory, creating it on first use and growing it to <paramref name="diskGb"/>
    /// (only while the instance's process is stopped). False when the instance has no disk of its own: a size without DiskGb, or data written before disks existed.
    /// </summary>
    public static bool Ensure(LocalInstancePaths paths, int diskGb, InstanceUser user)
    {
        var image = ImageOf(paths);
        var wanted = diskGb * Gibibyte;
        if (diskGb <= 0 || (!File.Exists(image) && Directory.Exists(paths.Data) && Directory.EnumerateFileSystemEntries(paths.Data).Any()))
        {
            return false;
        }

        if (!File.Exists(image))
        {
            Create(image, wanted, user);
        }

        if (new FileInfo(image).Length < wanted)
        {
            using var file = new FileStream(image, FileMode.Open, FileAccess.Write);
            file.SetLength(wanted);
        }

        Directory.CreateDirectory(paths.Data, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Mount(image, paths);

        // The file system catches up with a grown image offline (online resizing is refused on some kernels, this
        // machine's among them): the instance's process is stopped while it starts. Decided from the file system itself,
        // so a grow interrupted after the image grew is finished by the next start.
        if (new DriveInfo(paths.Data).TotalSize < new FileInfo(image).Length * 9 / 10)
        {
            // Never lazily: a file system still in use must not be resized under its user.
            Check(LocalIsolation.Run("/usr/bin/umount", paths.Data), "unmount (to grow it) the disk of", paths);
            Check(LocalIsolation.Run("/usr/sbin/e2fsck", "-f", "-p", image), "check the disk of", paths);
            Check(LocalIsolation.Run("/usr/sbin/resize2fs", image), "grow the disk of", paths);
            Mount(image, paths);
        }

        return true;
    }

    private static void Mount(string image, LocalInstancePaths paths)
    {
        if (MountedDevice(paths.Data) is null)
        {
            Check(LocalIsolation.Run("/usr/bin/mount", "-o", "loop,nosuid,nodev,noexec", image, paths.Data), "mount the disk of", paths);
        }
    }

    /// <summary>Unmounts the instance's disk (its process must be gone); lazily when something still holds it, such as a backup reading it.</summary>
    public static void Release(LocalInstancePaths paths)
    {
        if (MountedDevice(paths.Data) is null)
        {
            return;
        }

        if (LocalIsolation.Run("/usr/bin/umount", paths.Data).ExitCode != 0)
        {
            Check(LocalIsolation.Run("/usr/bin/umount", "--lazy", paths.Data), "unmount the disk of", paths);
        }
    }

    /// <summary>How full the instance's own disk is; null when it has none mounted.</summary>
    public static DiskUsage? Usage(LocalInstancePaths paths)
    {
        if (MountedDevice(paths.Data) is null)
        {
            return null;
        }

        var drive = new DriveInfo(paths.Data);
        return new DiskUsage(drive.TotalSize - drive.TotalFreeSpace, drive.TotalSize);
    }

    /// <summary>The device mounted exactly on <paramref name="directory"/> (from /proc/self/mountinfo), or null.</summary>
    public static string? MountedDevice(string directory) =>
        File.ReadLines("/proc/self/mountinfo")
            .Select(line => line.Split(' '))
            .Where(fields => fields.Length > 4 && Unescape(fields[4]) == directory)
            .Select(fields => fields[Array.IndexOf(fields, "-") + 2])
            .LastOrDefault();

    private static void Create(string image, long bytes, InstanceUser user)
    {
        var partial = image + ".new";
        File.Delete(partial);
        using (var file = new FileStream(partial, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        {
            file.SetLength(bytes);
        }

        // No blocks reserved for root: the instance's user may use all of it. The root directory is the user's from the start.
        var (exitCode, error) = LocalIsolation.Run(
            "/usr/sbin/mkfs.ext4", "-q", "-F", "-m", "0", "-E", $"root_owner={user.Id}:{LocalIsolation.NoGroup}", partial);
        if (exitCode != 0)
        {
            throw new TransientDeploymentException($"mkfs.ext4 could not make {image} (exit code {exitCode}): {error}");
        }

        File.Move(partial, image);
    }

    private static void Check((int ExitCode, string Error) result, string what, LocalInstancePaths paths)
    {
        if (result.ExitCode != 0)
        {
            throw new TransientDeploymentException($"Could not {what} {paths.Root} (exit code {result.ExitCode}): {result.Error}");
        }
    }

    // mountinfo escapes space, tab, newline and backslash as octal.
    private static string Unescape(string field) =>
        field.Contains('\\', StringComparison.Ordinal)
            ? System.Text.RegularExpressions.Regex.Replace(field, @"\\([0-7]{3})", match => ((char)Convert.ToInt32(match.Groups[1].Value, 8)).ToString())
            : field;
}
