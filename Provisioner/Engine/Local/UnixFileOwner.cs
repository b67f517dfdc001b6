using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace Provisioner.Local;

/// <summary>Who owns a file, and giving it to someone, without following a symbolic link in its place (.NET has no API for either).</summary>
[SupportedOSPlatform("linux")]
public static partial class UnixFileOwner
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxUid = 0x8;

    // struct statx is the same on every architecture (unlike struct stat): stx_uid is the u32 at offset 20.
    private const int StatxSize = 256;
    private const int StatxUidOffset = 20;

    /// <summary>The user id owning <paramref name="path"/> itself, or null when it does not exist.</summary>
    public static int? Of(string path)
    {
        var buffer = new byte[StatxSize];
        return Statx(AtFdCwd, path, AtSymlinkNoFollow, StatxUid, buffer) == 0 ? BitConverter.ToInt32(buffer, StatxUidOffset) : null;
    }

    /// <summary>This process's effective user id.</summary>
    public static int Current => (int)GetEffectiveUserId();

    /// <summary>lchown(2): 0, or -1 with errno set.</summary>
    internal static int Change(string path, int owner, int group) => LChown(path, owner, group);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int directoryFd, string path, int flags, uint mask, [Out] byte[] buffer);

    [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LChown(string path, int owner, int group);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEffectiveUserId();
}
