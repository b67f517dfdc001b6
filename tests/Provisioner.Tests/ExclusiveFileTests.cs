using Provisioner.Deployments;
using Provisioner.Local;

namespace Provisioner.Tests;

/// <summary>Records and tombstones are written into files nobody could have prepared, so a planted link is never written through.</summary>
public sealed class ExclusiveFileTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("exclusive-file-tests-").FullName;

    [Fact]
    public void A_record_write_replaces_links_planted_at_its_name_and_its_old_temporary_name_without_writing_through_them()
    {
        var paths = new LocalInstancePaths(Path.Combine(_root, "instances"), "planted");
        paths.CreateDirectories();
        var victim = Path.Combine(_root, "someone-elses-file");
        File.WriteAllText(victim, "untouched");
        File.CreateSymbolicLink(paths.Record + ".tmp", victim);
        Directory.CreateDirectory(Path.GetDirectoryName(paths.Tombstone)!);
        File.CreateSymbolicLink(paths.Tombstone, victim);

        paths.WriteRecord(new LocalInstanceRecord
        {
            InstanceId = "planted", Product = "garnet", Version = "2.2.8", Size = "small", Port = 21000, Goal = DeploymentGoal.Running, Generation = 3,
        });
        paths.WriteTombstone(4);

        Assert.Equal("untouched", File.ReadAllText(victim));
        Assert.Equal(3, paths.ReadRecord()!.Generation);
        Assert.Equal(4, paths.ReadTombstone());
        Assert.Null(new FileInfo(paths.Tombstone).LinkTarget);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(paths.Record));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(paths.Tombstone));
        Assert.DoesNotContain(Directory.GetFiles(paths.Root), file => file.EndsWith(".tmp", StringComparison.Ordinal) && new FileInfo(file).LinkTarget is null);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);
}
