using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using ControlPlane.Api;
using ControlPlane.Persistence;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Primitives;

namespace ControlPlane.Security;

/// <summary>An API key as its owners see it: never its secret.</summary>
public sealed record ApiKeyRecord(
    string Id,
    string Name,
    string Role,
    string? TenantId,
    DateTimeOffset CreatedAt,
    string? CreatedBy = null,
    DateTimeOffset? ExpiresAt = null,
    DateTimeOffset? LastUsedAt = null,
    DateTimeOffset? RevokedAt = null);

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

    /// <summary>Keys as a resource: who made them, when they stop working, when they were last used.</summary>
    public static readonly Migration LifecycleMigration = new(
        "0031-api-key-lifecycle",
        """
        ALTER TABLE api_keys ADD COLUMN created_by TEXT NULL;
        ALTER TABLE api_keys ADD COLUMN expires_at TEXT NULL;
        ALTER TABLE api_keys ADD COLUMN last_used_at TEXT NULL;
        CREATE INDEX IF NOT EXISTS api_keys_by_tenant ON api_keys (tenant_id, created_at);
        """,
        """
        ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS created_by text NULL;
        ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS expires_at timestamptz NULL;
        ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS last_used_at timestamptz NULL;
        CREATE INDEX IF NOT EXISTS api_keys_by_tenant ON api_keys (tenant_id, created_at);
        """);

    /// <summary>How often a key's last-used time is written: at most once a minute per key, not once per request.</summary>
    public static readonly TimeSpan LastUsedResolution = TimeSpan.FromMinutes(1);

    /// <summary>The PostgreSQL NOTIFY channel on which a revocation is announced to every silo.</summary>
    public const string RevocationChannel = "controlplane_api_key_revoked";

    /// <summary>The most made-up keys remembered as invalid at once; beyond it, the oldest are forgotten first.</summary>
    public const int InvalidKeysRemembered = 100_000;

    private const string SecretPrefix = "cpk_";
    private const string Columns = "id, name, role, tenant_id, created_at, created_by, expires_at, last_used_at, revoked_at";

    // A key that is not valid is remembered too, in a cache of its own with a bound, so a flood of made-up keys
    // costs one query per distinct key per CacheDuration rather than one per request.
    private readonly MemoryCache _invalid = new(new MemoryCacheOptions { SizeLimit = InvalidKeysRemembered });
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, DateTimeOffset> _lastUsedWritten = new(StringComparer.Ordinal);
    private CancellationTokenSource _revocations = new();

    /// <summary>Creates a key and returns its secret, which is never stored and cannot be shown again.</summary>
    public async Task<(ApiKeyRecord Key, string Secret)> CreateAsync(
        string name, string role, string? tenantId, DateTimeOffset? expiresAt = null, string? createdBy = null, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await InsertAsync(connection, null, new NewKey(name, role, tenantId, expiresAt, createdBy), cancellationToken);
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

        var (key, secret) = await InsertAsync(connection, transaction, new NewKey(name, role, TenantId: null, ExpiresAt: null, "system"), cancellationToken);
        await keepSecret(secret, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return key;
    }

    /// <summary>
    /// Replaces a key with a new one of the same name, role and tenant (and a new secret). The old one stops working at
    /// once, or after <paramref name="overlap"/> so clients can switch over; never later than it would have anyway.
    /// </summary>
    public async Task<(ApiKeyRecord Key, string Secret)> RotateAsync(ApiKeyRecord old, TimeSpan overlap, string createdBy, CancellationToken cancellationToken = default)
    {
        var now = clock.GetUtcNow();
        var lifetime = old.ExpiresAt is { } expires ? expires - old.CreatedAt : (TimeSpan?)null;
        var oldUntil = now + overlap;
        if (old.ExpiresAt is { } oldExpiry && oldExpiry < oldUntil)
        {
            oldUntil = oldExpiry;
        }

        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var created = await InsertAsync(connection, transaction, new NewKey(old.Name, old.Role, old.TenantId, now + lifetime, createdBy), cancellationToken);
        await using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = overlap <= TimeSpan.Zero
                ? "UPDATE api_keys SET revoked_at = @at WHERE id = @id AND revoked_at IS NULL;"
                : "UPDATE api_keys SET expires_at = @until WHERE id = @id AND revoked_at IS NULL;";
            Database.AddParameter(command, "id", old.Id);
            database.AddTimestamp(command, "at", now);
            database.AddTimestamp(command, "until", oldUntil);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await NotifyRevokedAsync(connection, transaction, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        ForgetCachedKeys();
        return created;
    }

    /// <summary>The active, unexpired key with this secret, or null. Records when it was last used (to the minute).</summary>
    public async Task<ApiKeyRecord?> FindAsync(string secret, CancellationToken cancellationToken = default)
    {
        if (!secret.StartsWith(SecretPrefix, StringComparison.Ordinal) || secret.Length > 128)
        {
            return null;
        }

        var hash = Hash(secret);
        var cacheKey = (typeof(ApiKeyStore), hash);
        if (cache.TryGetValue(cacheKey, out ApiKeyRecord? known) && known is not null)
        {
            await NoteUsedAsync(known, cancellationToken);
            return known;
        }

        if (_invalid.TryGetValue(hash, out _))
        {
            return null;
        }

        // Taken before the query: a revocation announced while it runs must also evict what it returns.
        var revocations = _revocations.Token;
        var now = clock.GetUtcNow();
        var record = (await database.QueryAsync(
            $"SELECT {Columns} FROM api_keys WHERE secret_hash = @hash AND revoked_at IS NULL;",
            Read,
            cancellationToken,
            ("hash", hash))).SingleOrDefault();
        if (record is null || record.ExpiresAt <= now)
        {
            using var invalid = _invalid.CreateEntry(hash);
            invalid.Value = true;
            invalid.Size = 1;
            invalid.AbsoluteExpirationRelativeToNow = CacheDuration;
            return null;
        }

        using (var entry = cache.CreateEntry(cacheKey))
        {
            entry.Value = record;
            entry.AbsoluteExpirationRelativeToNow = record.ExpiresAt is { } expiresAt && expiresAt - now < CacheDuration ? expiresAt - now : CacheDuration;
            entry.AddExpirationToken(new CancellationChangeToken(revocations));
        }

        await NoteUsedAsync(record, cancellationToken);
        return record;
    }

    public async Task<ApiKeyRecord?> FindByIdAsync(string keyId, CancellationToken cancellationToken = default) =>
        (await database.QueryAsync($"SELECT {Columns} FROM api_keys WHERE id = @id;", Read, cancellationToken, ("id", keyId))).SingleOrDefault();

    /// <summary>A tenant's keys (null: the platform's), newest first; revoked and expired ones only when asked.</summary>
    public async Task<Page<ApiKeyRecord>> ListAsync(string? tenantId, bool includeInactive, PageRequest page, CancellationToken cancellationToken = default)
    {
        var rows = await database.QueryAsync(
            $"""
            SELECT {Columns} FROM api_keys
            WHERE {(tenantId is null ? "tenant_id IS NULL" : "tenant_id = @tenant")}
              AND (@all = 1 OR (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > @now)))
              AND (CAST(@after AS TEXT) IS NULL OR id < @after)
            ORDER BY id DESC LIMIT @limit;
            """,
            Read,
            cancellationToken,
            ("tenant", tenantId),
            ("all", includeInactive ? 1 : 0),
            ("now", database.Timestamp(clock.GetUtcNow())),
            ("after", page.After),
            ("limit", page.Size + 1));
        return Paging.Fetched(rows, page.Size, key => key.Id);
    }

    /// <summary>Every key there is or was, for the key inventory of an evidence bundle.</summary>
    public Task<List<ApiKeyRecord>> AllAsync(CancellationToken cancellationToken = default) =>
        database.QueryAsync($"SELECT {Columns} FROM api_keys ORDER BY tenant_id, created_at;", Read, cancellationToken);

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

    public void Dispose()
    {
        _revocations.Dispose();
        _invalid.Dispose();
    }

    private async Task NoteUsedAsync(ApiKeyRecord key, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        if (_lastUsedWritten.TryGetValue(key.Id, out var written) && now - written < LastUsedResolution)
        {
            return;
        }

        _lastUsedWritten[key.Id] = now;
        await database.ExecuteAsync("UPDATE api_keys SET last_used_at = @at WHERE id = @id;", cancellationToken, ("at", database.Timestamp(now)), ("id", key.Id));
    }

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

        await NotifyRevokedAsync(connection, transaction, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        ForgetCachedKeys();
    }

    /// <summary>Tells every other silo to forget its remembered keys, when (and only if) the transaction commits.</summary>
    private async Task NotifyRevokedAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken)
    {
        if (database.IsShared)
        {
            await using var notify = connection.CreateCommand();
            notify.Transaction = transaction;
            notify.CommandText = $"SELECT pg_notify('{RevocationChannel}', '');";
            await notify.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    private sealed record NewKey(string Name, string Role, string? TenantId, DateTimeOffset? ExpiresAt, string? CreatedBy);

    private async Task<(ApiKeyRecord Key, string Secret)> InsertAsync(DbConnection connection, DbTransaction? transaction, NewKey key, CancellationToken cancellationToken)
    {
        var secret = SecretPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var record = new ApiKeyRecord(
            "key-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)), key.Name, key.Role, key.TenantId, clock.GetUtcNow(), key.CreatedBy, key.ExpiresAt);
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = """
            INSERT INTO api_keys (id, name, secret_hash, role, tenant_id, created_at, created_by, expires_at)
            VALUES (@id, @name, @hash, @role, @tenant, @at, @by, @expires);
            """;
        Database.AddParameter(command, "id", record.Id);
        Database.AddParameter(command, "name", record.Name);
        Database.AddParameter(command, "hash", Hash(secret));
        Database.AddParameter(command, "role", record.Role);
        Database.AddParameter(command, "tenant", record.TenantId);
        database.AddTimestamp(command, "at", record.CreatedAt);
        Database.AddParameter(command, "by", record.CreatedBy);
        Database.AddParameter(command, "expires", record.ExpiresAt is { } expires ? database.Timestamp(expires) : null);
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

    private static ApiKeyRecord Read(DbDataReader reader) => new(
        reader.GetString(0),
        reader.GetString(1),
        reader.GetString(2),
        reader.IsDBNull(3) ? null : reader.GetString(3),
        Database.ReadTimestamp(reader, 4),
        reader.IsDBNull(5) ? null : reader.GetString(5),
        reader.IsDBNull(6) ? null : Database.ReadTimestamp(reader, 6),
        reader.IsDBNull(7) ? null : Database.ReadTimestamp(reader, 7),
        reader.IsDBNull(8) ? null : Database.ReadTimestamp(reader, 8));

    private static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));
}
