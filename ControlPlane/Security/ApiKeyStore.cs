using System.Data.Common;
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
/// here forgets them at once. In cluster mode a revocation also notifies every other silo
/// (<see cref="RevocationChannel"/>, see <see cref="ApiKeyRevocationListener"/>), which forget theirs as soon as the
/// notification arrives; <see cref="CacheDuration"/> bounds it when a silo is cut off from the notifications.
/// </summary>
public sealed class ApiKeyStore(Database database, TimeProvider clock, IMemoryCache cache) : IDisposable
{
    public static readonly TimeSpan CacheDuration = TimeSpan.FromSeconds(30);

    /// <summary>Only a SHA-256 of each secret is kept.</summary>
    public static readonly Migration Migration = new(
        "0010-api-keys",
        """
        CREATE TABLE IF NOT EXISTS api_keys (
            id          TEXT PRIMARY KEY,
            name        TEXT NOT NULL,
            secret_hash TEXT NOT NULL UNIQUE,
            role        TEXT NOT NULL,
            tenant_id   TEXT NULL,
            created_at  TEXT NOT NULL,
            revoked_at  TEXT NULL
        );
        """,
        """
        CREATE TABLE IF NOT EXISTS api_keys (
            id          text        PRIMARY KEY,
            name        text        NOT NULL,
            secret_hash text        NOT NULL UNIQUE,
            role        text        NOT NULL,
            tenant_id   text        NULL,
            created_at  timestamptz NOT NULL,
            revoked_at  timestamptz NULL
        );
        """);

    /// <summary>The PostgreSQL NOTIFY channel on which a revocation is announced to every silo.</summary>
    public const string RevocationChannel = "controlplane_api_key_revoked";

    private const string SecretPrefix = "cpk_";
    private CancellationTokenSource _revocations = new();

    /// <summary>Creates a key and returns its secret, which is never stored and cannot be shown again.</summary>
    public async Task<(ApiKeyRecord Key, string Secret)> CreateAsync(string name, string role, string? tenantId, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await InsertAsync(connection, null, name, role, tenantId, cancellationToken);
    }

    /// <summary>
    /// Creates a key unless an active one with <paramref name="role"/> exists; null when one does. Atomic across every
    /// process that shares the database, so silos starting together create one key, not one each.
    /// <paramref name="keepSecret"/> stores the secret before the key is committed: a crash in between leaves a secret
    /// that never worked, never a working key that nobody has.
    /// </summary>
    public async Task<ApiKeyRecord?> CreateFirstAsync(
        string name, string role, Func<string, CancellationToken, Task> keepSecret, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await database.LockAsync(transaction, $"api_keys/{role}", cancellationToken);
        if (await CountActiveAsync(connection, transaction, role, cancellationToken) > 0)
        {
            return null;
        }

        var (key, secret) = await InsertAsync(connection, transaction, name, role, tenantId: null, cancellationToken);
        await keepSecret(secret, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return key;
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

        // Taken before the query: a revocation announced while it runs must also evict what it returns.
        var revocations = _revocations.Token;
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, name, role, tenant_id, created_at FROM api_keys WHERE secret_hash = @hash AND revoked_at IS NULL;";
        Database.AddParameter(command, "hash", hash);
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
            Database.ReadTimestamp(reader, 4));
        using var entry = cache.CreateEntry(cacheKey);
        entry.Value = record;
        entry.AbsoluteExpirationRelativeToNow = CacheDuration;
        entry.AddExpirationToken(new CancellationChangeToken(revocations));
        return record;
    }

    public async Task<int> CountActiveAsync(string role, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await CountActiveAsync(connection, null, role, cancellationToken);
    }

    public Task RevokeAllAsync(string role, CancellationToken cancellationToken = default) =>
        RevokeWhereAsync("role = @role", "role", role, cancellationToken);

    public Task RevokeAsync(string keyId, CancellationToken cancellationToken = default) =>
        RevokeWhereAsync("id = @id", "id", keyId, cancellationToken);

    /// <summary>Forgets every remembered key, so the next request of each reads the database again.</summary>
    public void ForgetCachedKeys()
    {
        var revoked = Interlocked.Exchange(ref _revocations, new CancellationTokenSource());
        revoked.Cancel();
        revoked.Dispose();
    }

    public void Dispose() => _revocations.Dispose();

    private async Task RevokeWhereAsync(string condition, string parameter, string value, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = $"UPDATE api_keys SET revoked_at = @at WHERE {condition} AND revoked_at IS NULL;";
            Database.AddParameter(command, parameter, value);
            database.AddTimestamp(command, "at", clock.GetUtcNow());
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        if (database.IsShared)
        {
            // Delivered to every listening silo when, and only if, the revocation commits.
            await using var notify = connection.CreateCommand();
            notify.Transaction = transaction;
            notify.CommandText = $"SELECT pg_notify('{RevocationChannel}', '');";
            await notify.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        ForgetCachedKeys();
    }

    private async Task<(ApiKeyRecord Key, string Secret)> InsertAsync(
        DbConnection connection, DbTransaction? transaction, string name, string role, string? tenantId, CancellationToken cancellationToken)
    {
        var secret = SecretPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var record = new ApiKeyRecord("key-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)), name, role, tenantId, clock.GetUtcNow());
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = """
            INSERT INTO api_keys (id, name, secret_hash, role, tenant_id, created_at)
            VALUES (@id, @name, @hash, @role, @tenant, @at);
            """;
        Database.AddParameter(command, "id", record.Id);
        Database.AddParameter(command, "name", record.Name);
        Database.AddParameter(command, "hash", Hash(secret));
        Database.AddParameter(command, "role", record.Role);
        Database.AddParameter(command, "tenant", record.TenantId);
        database.AddTimestamp(command, "at", record.CreatedAt);
        await command.ExecuteNonQueryAsync(cancellationToken);
        return (record, secret);
    }

    private static async Task<int> CountActiveAsync(DbConnection connection, DbTransaction? transaction, string role, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "SELECT COUNT(*) FROM api_keys WHERE role = @role AND revoked_at IS NULL;";
        Database.AddParameter(command, "role", role);
        return Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));
}
