namespace ControlPlane.Tests.Support;

/// <summary>A private data directory for one test; disposing it kills every process that runs from it.</summary>
public sealed class TestDirectory : IDisposable
{
    private readonly bool _mounted;

    public TestDirectory()
        : this(mounted: false)
    {
    }

    private TestDirectory(bool mounted)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "cp-tests", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path);
        _mounted = mounted;
    }

    public string Path { get; }

    /// <summary>A directory on a file system of its own of <paramref name="megabytes"/> (tmpfs; needs root), so a test can fill it.</summary>
    public static TestDirectory OnOwnFileSystem(int megabytes)
    {
        var directory = new TestDirectory(mounted: true);
        Run("mount", $"-t tmpfs -o size={megabytes}m,mode=0711 tmpfs {directory.Path}");
        return directory;
    }

    /// <summary>Writes a file that takes every free byte of the directory's file system; returns its path.</summary>
    public string Fill()
    {
        var filler = System.IO.Path.Combine(Path, "filler");
        using var stream = new FileStream(filler, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        var block = new byte[1 << 16];
        try
        {
            while (true)
            {
                stream.Write(block);
                stream.Flush();
            }
        }
        catch (IOException)
        {
            // ENOSPC: the file system is full.
        }

        return filler;
    }

    public void Dispose()
    {
        HostedProcesses.KillUnder(Path);
        // Instances' disks and users, whether this is a data directory or an instances directory.
        Provisioner.Local.LocalIsolation.ReleaseAll(System.IO.Path.Combine(Path, "instances"));
        Provisioner.Local.LocalIsolation.ReleaseAll(Path);
        if (_mounted)
        {
            Run("umount", $"-l {Path}");
        }

        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static void Run(string command, string arguments)
    {
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(command, arguments) { RedirectStandardError = true })!;
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{command} {arguments} failed ({process.ExitCode}): {error}");
        }
    }
}
