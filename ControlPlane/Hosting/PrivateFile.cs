namespace ControlPlane.Hosting;

/// <summary>Files only the control plane's OS user may read: the bootstrap admin key, the first sign-in link.</summary>
public static class PrivateFile
{
    /// <summary>
    /// Writes <paramref name="content"/> to <paramref name="path"/> with mode 0600, created anew, exclusively (O_EXCL): a
    /// file or symbolic link left at the name is replaced, never written through.
    /// </summary>
    public static async Task WriteAsync(string path, string content, CancellationToken cancellationToken)
    {
        var temporary = path + ".tmp";
        File.Delete(temporary);
        await using (var file = new FileStream(temporary, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        {
            await file.WriteAsync(System.Text.Encoding.UTF8.GetBytes(content + "\n"), cancellationToken);
            await file.FlushAsync(cancellationToken);
        }

        File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(temporary, path, overwrite: true);
    }
}
