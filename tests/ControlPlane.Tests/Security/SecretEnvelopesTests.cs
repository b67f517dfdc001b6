using ControlPlane.Hosting;
using ControlPlane.Instances;
using ControlPlane.Secrets;
using ControlPlane.Tests.Support;

namespace ControlPlane.Tests.Security;

/// <summary>Envelope encryption of stored instance passwords, its key file and key rotation, without a silo.</summary>
public sealed class SecretEnvelopesTests : IDisposable
{
    private readonly TestDirectory _directory = new();

    private string KeyFilePath => Path.Combine(_directory.Path, SecretKeyFile.FileName);

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task The_key_file_is_created_once_private_and_a_sealed_secret_holds_neither_the_password_nor_the_key()
    {
        var file = new SecretKeyFile(KeyFilePath);
        file.EnsureCreated();
        var created = await File.ReadAllTextAsync(KeyFilePath);
        file.EnsureCreated();

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(KeyFilePath));
        Assert.Equal(created, await File.ReadAllTextAsync(KeyFilePath));
        using var envelopes = new SecretEnvelopes(file);
        var sealedValue = await envelopes.SealAsync("hunter2-password", "instance/ins-1/password");

        Assert.StartsWith("env1.1.", sealedValue, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", sealedValue, StringComparison.Ordinal);
        Assert.DoesNotContain(created.Split(':')[1].Trim(), sealedValue, StringComparison.Ordinal);
        Assert.Equal("hunter2-password", await envelopes.OpenAsync(sealedValue, "instance/ins-1/password"));
        // Bound to where it belongs: copied into another instance's state, it does not open.
        await Assert.ThrowsAsync<SecretUnreadableException>(() => envelopes.OpenAsync(sealedValue, "instance/ins-2/password"));
    }

    [Fact]
    public async Task A_key_file_others_can_read_is_refused_at_start_and_when_read()
    {
        var file = new SecretKeyFile(KeyFilePath);
        file.EnsureCreated();
        File.SetUnixFileMode(KeyFilePath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);

        var atStart = Assert.Throws<StartupFailedException>(() => DataDirectoryPermissions.Enforce(new DataDirectory(_directory.Path)));
        var whenRead = await Assert.ThrowsAsync<InvalidOperationException>(() => file.ReadAsync(CancellationToken.None));

        Assert.Contains("chmod 600 " + KeyFilePath, atStart.Message, StringComparison.Ordinal);
        Assert.Contains("chmod 600 " + KeyFilePath, whenRead.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task After_a_key_rotation_new_secrets_use_the_new_version_old_ones_still_open_and_a_rewrap_moves_them_to_it()
    {
        var file = new SecretKeyFile(KeyFilePath);
        file.EnsureCreated();
        string old;
        using (var before = new SecretEnvelopes(file))
        {
            old = await before.SealAsync("old-password", "instance/ins-1/password");
        }

        Assert.Equal(2, await file.AddVersionAsync(CancellationToken.None));
        using var after = new SecretEnvelopes(file);

        var fresh = await after.SealAsync("new-password", "instance/ins-2/password");
        Assert.Equal((1, 2), (SecretEnvelopes.KeyVersionOf(old), SecretEnvelopes.KeyVersionOf(fresh)));
        Assert.Equal("old-password", await after.OpenAsync(old, "instance/ins-1/password"));

        var rewrapped = await after.RewrapAsync(old, "instance/ins-1/password");
        Assert.NotNull(rewrapped);
        Assert.Equal(2, SecretEnvelopes.KeyVersionOf(rewrapped));
        Assert.Null(await after.RewrapAsync(rewrapped, "instance/ins-1/password"));

        // Once every secret is re-wrapped, v1 can go: what was re-wrapped opens, what was not says which version it needs.
        var keys = (await File.ReadAllLinesAsync(KeyFilePath)).Where(line => !line.StartsWith("v1:", StringComparison.Ordinal));
        await File.WriteAllLinesAsync(KeyFilePath, keys);
        using var withoutV1 = new SecretEnvelopes(file);
        Assert.Equal("old-password", await withoutV1.OpenAsync(rewrapped, "instance/ins-1/password"));
        var missing = await Assert.ThrowsAsync<SecretUnreadableException>(() => withoutV1.OpenAsync(old, "instance/ins-1/password"));
        Assert.Contains("v1", missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_instance_stored_with_a_plaintext_password_is_sealed_given_a_platform_password_and_rewrapped_after_a_rotation()
    {
        var file = new SecretKeyFile(KeyFilePath);
        file.EnsureCreated();
        var legacy = new InstanceState { Id = "ins-legacy", Password = "stored-before-encryption" };

        using (var envelopes = new SecretEnvelopes(file))
        {
            var secrets = new InstanceSecrets(envelopes);
            Assert.True(await secrets.MigrateAsync(legacy));
            Assert.False(await secrets.MigrateAsync(legacy));
            var opened = await secrets.OpenAsync(legacy);
            Assert.Equal("stored-before-encryption", opened.Customer.Value);
            Assert.NotEqual(opened.Customer.Value, opened.Platform.Value);
        }

        Assert.Null(legacy.Password);
        Assert.DoesNotContain("stored-before-encryption", System.Text.Json.JsonSerializer.Serialize(legacy), StringComparison.Ordinal);

        await file.AddVersionAsync(CancellationToken.None);
        using var rotated = new SecretEnvelopes(file);
        var afterRotation = new InstanceSecrets(rotated);
        Assert.True(await afterRotation.MigrateAsync(legacy));
        Assert.Equal((2, 2), (SecretEnvelopes.KeyVersionOf(legacy.SealedPassword!), SecretEnvelopes.KeyVersionOf(legacy.SealedPlatformPassword!)));
        Assert.Equal("stored-before-encryption", (await afterRotation.OpenAsync(legacy)).Customer.Value);
    }
}
