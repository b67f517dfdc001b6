namespace ControlPlane.Hosting;

/// <summary>Files only the control plane's OS user may read: the bootstrap admin key, the first sign-in link.</summary>
public static class PrivateFile
{
    /// <summary>
    /// Writes <paramref name="content"/> to <paramref name="path"/> with mode 0600, created anew, exclusively (O_EXCL): a
    /// file or symbolic link left at the name is replaced, never written through.
    /// </summary>
    public static Task WriteAsync(string path, string content, CancellationToken cancellationToken) =>
        Provisioner.Local.ExclusiveFile.ReplaceAsync(
            path, file => file.WriteAsync(System.Text.Encoding.UTF8.GetBytes(content + "\n"), cancellationToken).AsTask());
}
