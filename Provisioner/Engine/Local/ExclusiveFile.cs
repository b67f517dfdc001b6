namespace Provisioner.Local;

/// <summary>
/// Replaces a file the way secrets and records must be written: into a new temporary file of a name nobody could have
/// prepared (O_EXCL: a file or symbolic link planted there is never written through), private (0600) from its first
/// byte, on disk before it takes the name, and renamed over the old one, so a crash leaves the old file or the new one.
/// </summary>
public static class ExclusiveFile
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    public static void Replace(string path, Action<Stream> write)
    {
        var temporary = TemporaryFor(path);
        try
        {
            using (var file = Create(temporary))
            {
                write(file);
                file.Flush(flushToDisk: true);
            }

            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    public static async Task ReplaceAsync(string path, Func<Stream, Task> write)
    {
        var temporary = TemporaryFor(path);
        try
        {
            await using (var file = Create(temporary))
            {
                await write(file);
                file.Flush(flushToDisk: true);
            }

            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    public static void Replace(string path, string content) =>
        Replace(path, stream => stream.Write(System.Text.Encoding.UTF8.GetBytes(content)));

    private static string TemporaryFor(string path) => $"{path}.{Guid.NewGuid():N}.tmp";

    private static FileStream Create(string temporary) => new(temporary, new FileStreamOptions
    {
        Mode = FileMode.CreateNew,
        Access = FileAccess.Write,
        UnixCreateMode = OperatingSystem.IsWindows() ? null : OwnerOnly,
    });
}
