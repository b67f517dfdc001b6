using ControlPlane.Persistence;
using ControlPlane.Security;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.Caching.Memory;

namespace ControlPlane.Tests.Security;

public sealed class ApiKeyStoreTests : IDisposable
{
    private readonly TestDirectory _directory = new();
    private readonly MemoryCache _cache = new(new MemoryCacheOptions());
    private readonly ApiKeyStore _keys;

    public ApiKeyStoreTests() => _keys = new ApiKeyStore(TestSchema.Sqlite(_directory.Path), TimeProvider.System, _cache);

    public void Dispose()
    {
        _keys.Dispose();
        _cache.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public async Task A_created_key_is_found_by_its_secret_and_only_its_hash_is_stored()
    {
        var (key, secret) = await _keys.CreateAsync("ci", Roles.PlatformAdmin, tenantId: null);

        var found = await _keys.FindAsync(secret);

        Assert.Equal(key.Id, found?.Id);
        Assert.Null(await _keys.FindAsync(secret + "x"));
        Assert.Null(await _keys.FindAsync("not-even-the-prefix"));
        var database = await File.ReadAllBytesAsync(Path.Combine(_directory.Path, "controlplane.db"));
        var wal = Path.Combine(_directory.Path, "controlplane.db-wal");
        var bytes = File.Exists(wal) ? [.. database, .. await File.ReadAllBytesAsync(wal)] : database;
        Assert.DoesNotContain(secret, System.Text.Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_revoked_key_stops_working_at_once_even_when_it_was_cached()
    {
        var (_, secret) = await _keys.CreateAsync("ci", Roles.PlatformAdmin, tenantId: null);
        Assert.NotNull(await _keys.FindAsync(secret));

        await _keys.RevokeAllAsync(Roles.PlatformAdmin);

        Assert.Null(await _keys.FindAsync(secret));
    }
}
