using System.Security.Cryptography;
using System.Text;
using ControlPlane.Persistence;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Primitives;

namespace ControlPlane.Security;

public static class Roles
{
    /// <summary>Operates the whole platform: every tenant, every instance.</summary>
    public const string PlatformAdmin = "platform-admin";

    /// <summary>Reads billing across tenants (reconciliation, credits); changes nothing.</summary>
    public const string Finance = "finance";
}

public sealed record ApiKeyRecord(string Id, string Name, string Role, string? TenantId, DateTimeOffset CreatedAt);

/// <summary>
/// API keys. Only a SHA-256 of each secret is stored: the secrets are 256 random bits, so a fast hash is
/// enough and a stolen database does not yield usable keys. Valid keys are remembered for
/// <see cref="CacheDuration"/> so a polling client does not cost a database query per request; revoking
/// here forgets them at once (another process's revocation takes effect within that time).
/// </summary>
public sealed class ApiKeyStore(ControlPlaneDatabase database, TimeProvider clock, IMemoryCache cache) : IDisposable
{
    public static readonly TimeSpan CacheDuration = TimeSpan.FromSeconds(30);

    private const string SecretPrefix = "cpk_";
    private CancellationTokenSource _revocations = new();

    /// <summary>Creates a key and returns its secret, which is never stored and cannot be shown again.</summary>
    public async Task<(ApiKeyRecord Key, string Secret)> CreateAsync(string name, string role, string? tenantId, CancellationToken cancellationToken = default)
    {
        var secret = SecretPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var record = new ApiKeyRecord("key-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)), name, role, tenantId, clock.GetUtcNow());
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO api_keys (id, name, secret_hash, role, tenant_id, created_at)
            VALUES ($id, $name, $hash, $role, $tenant, $at);
            """;
        command.Parameters.AddWithValue("$id", record.Id);
        command.Parameters.AddWithValue("$name", record.Name);
        command.Parameters.AddWithValue("$hash", Hash(secret));
        command.Parameters.AddWithValue("$role", record.Role);
        command.Parameters.AddWithValue("$tenant", (object?)record.TenantId ?? DBNull.Value);
        command.Parameters.AddWithValue("$at", record.CreatedAt.ToString("O"));
        await command.ExecuteNonQueryAsync(cancellationToken);
        return (record, secret);
    }

    /// <summary>The active key with this secret, or null.</summary>
    public async Task<ApiKeyRecord?> FindAsync(string secret, CancellationToken cancellationToken = default)
    {
        if (!secret.StartsWith(SecretPrefix, StringComparison.Ordinal) || secret.Length > 128)
        {
            return null;
        }

        var hash = Hash(secret);
        var cacheKey = (typeof(ApiKeyStore), hash);
        if (cache.TryGetValue(cacheKey, out ApiKeyRecord? known))
        {
            return known;
        }

        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, name, role, tenant_id, created_at FROM api_keys WHERE secret_hash = $hash AND revoked_at IS NULL;";
        command.Parameters.AddWithValue("$hash", hash);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        var record = new ApiKeyRecord(
            reader.GetString(0),
            reader.GetString(1),
            reader.GetString(2),
            reader.IsDBNull(3) ? null : reader.GetString(3),
            DateTimeOffset.Parse(reader.GetString(4), System.Globalization.CultureInfo.InvariantCulture));
        using var entry = cache.CreateEntry(cacheKey);
        entry.Value = record;
        entry.AbsoluteExpirationRelativeToNow = CacheDuration;
        entry.AddExpirationToken(new CancellationChangeToken(_revocations.Token));
        return record;
    }

    public async Task<int> CountActiveAsync(string role, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM api_keys WHERE role = $role AND revoked_at IS NULL;";
        command.Parameters.AddWithValue("$role", role);
        return Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
    }

    public async Task RevokeAllAsync(string role, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "UPDATE api_keys SET revoked_at = $at WHERE role = $role AND revoked_at IS NULL;";
        command.Parameters.AddWithValue("$role", role);
        command.Parameters.AddWithValue("$at", clock.GetUtcNow().ToString("O"));
        await command.ExecuteNonQueryAsync(cancellationToken);
        var revoked = Interlocked.Exchange(ref _revocations, new CancellationTokenSource());
        await revoked.CancelAsync();
        revoked.Dispose();
    }

    public void Dispose() => _revocations.Dispose();

    private static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));
}
