using ControlPlane.Hosting;
using ControlPlane.Tests.Support;

namespace ControlPlane.Tests.Security;

/// <summary>The data directory's secrets are checked at every start, not only when they are created.</summary>
public sealed class DataDirectoryPermissionTests
{
    private const UnixFileMode OwnerOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode OwnerOnlyDirectory = OwnerOnlyFile | UnixFileMode.UserExecute;

    [Fact]
    public void A_start_takes_back_access_others_were_given_to_the_data_directory()
    {
        using var factory = new ControlPlaneFactory();
        // Loosened while the control plane was down (a restore, a careless chmod).
        File.SetUnixFileMode(factory.DataDirectory.Path, OwnerOnlyDirectory | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);

        _ = factory.CreateAdminApi();

        // Others keep only the right to pass through, which instances' own users need to reach their data.
        Assert.Equal(OwnerOnlyDirectory | UnixFileMode.OtherExecute, File.GetUnixFileMode(factory.DataDirectory.Path));
        Assert.Equal(OwnerOnlyFile, File.GetUnixFileMode(Path.Combine(factory.DataDirectory.Path, "controlplane.db")));
        Assert.Equal(OwnerOnlyDirectory, File.GetUnixFileMode(Path.Combine(factory.DataDirectory.Path, "data-protection-keys")));
        Assert.Contains(factory.Logs.Lines, line => line.Contains("Took group access away", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_start_refuses_a_secret_every_user_could_read_and_still_corrects_a_group_readable_one()
    {
        using var directory = new TestDirectory();
        var keyFile = Path.Combine(directory.Path, "admin-api-key");
        var database = Path.Combine(directory.Path, "controlplane.db");
        await File.WriteAllTextAsync(keyFile, "cpk_x\n");
        await File.WriteAllTextAsync(database, "");
        File.SetUnixFileMode(database, OwnerOnlyFile | UnixFileMode.GroupRead);
        File.SetUnixFileMode(keyFile, OwnerOnlyFile | UnixFileMode.OtherRead);

        var refused = Assert.Throws<StartupFailedException>(() => DataDirectoryPermissions.Enforce(new DataDirectory(directory.Path)));
        Assert.Contains("open to every user", refused.Message, StringComparison.Ordinal);
        Assert.Contains("chmod 600 " + keyFile, refused.Message, StringComparison.Ordinal);
        Assert.Contains("delete the file", refused.Message, StringComparison.Ordinal);

        // What could be corrected was, even though the start stopped.
        Assert.Equal(OwnerOnlyFile, File.GetUnixFileMode(database));
        File.SetUnixFileMode(keyFile, OwnerOnlyFile);
        Assert.Empty(DataDirectoryPermissions.Enforce(new DataDirectory(directory.Path)));
    }

    [Fact]
    public async Task A_start_refuses_a_secret_owned_by_another_user_and_says_how_to_fix_it()
    {
        Assert.True(Environment.IsPrivilegedProcess, "Giving a file to another user needs root, as CI runs these tests.");
        using var directory = new TestDirectory();
        var keyFile = Path.Combine(directory.Path, "admin-api-key");
        var keyRing = Path.Combine(directory.Path, "data-protection-keys");
        await File.WriteAllTextAsync(keyFile, "cpk_x\n");
        File.SetUnixFileMode(keyFile, OwnerOnlyFile);
        Directory.CreateDirectory(keyRing, OwnerOnlyDirectory);
        var key = Path.Combine(keyRing, "key-1.xml");
        await File.WriteAllTextAsync(key, "<key/>");
        File.SetUnixFileMode(key, OwnerOnlyFile);
        Chown(key, 12345);

        var refused = Assert.Throws<StartupFailedException>(() => DataDirectoryPermissions.Enforce(new DataDirectory(directory.Path)));
        Assert.Contains($"{key} belongs to user 12345", refused.Message, StringComparison.Ordinal);
        Assert.Contains($"chown -R 0 {key}", refused.Message, StringComparison.Ordinal);

        Chown(key, 0);
        Assert.Empty(DataDirectoryPermissions.Enforce(new DataDirectory(directory.Path)));
    }

    [Fact]
    public async Task A_link_planted_where_the_admin_key_is_written_is_replaced_never_written_through()
    {
        using var outside = new TestDirectory();
        var target = Path.Combine(outside.Path, "someone-elses-file");
        await File.WriteAllTextAsync(target, "untouched");
        using var factory = new ControlPlaneFactory();
        File.CreateSymbolicLink(Path.Combine(factory.DataDirectory.Path, "admin-api-key.tmp"), target);

        var api = factory.CreateAdminApi();

        Assert.Equal("untouched", await File.ReadAllTextAsync(target));
        Assert.StartsWith("cpk_", await File.ReadAllTextAsync(Path.Combine(factory.DataDirectory.Path, "admin-api-key")), StringComparison.Ordinal);
        Assert.NotNull(await api.GetAsync("/api/v1/catalog"));
    }

    private static void Chown(string path, int user)
    {
        using var process = System.Diagnostics.Process.Start("chown", [user.ToString(System.Globalization.CultureInfo.InvariantCulture), path]);
        process.WaitForExit();
        Assert.Equal(0, process.ExitCode);
    }
}
