using System.Security.Cryptography;
using System.Text;
using ControlPlane.Persistence;

namespace ControlPlane.Security;

public static class Roles
{
    /// <summary>Operates the whole platform: every tenant, every instance.</summary>
    public const string PlatformAdmin = "platform-admin";
}

public sealed record ApiKeyRecord(string Id, string Name, string Role, string? TenantId, DateTimeOffset CreatedAt);

/// <summary>
/// API keys. Only a SHA-256 of each secret is stored: the secrets are 256 random bits, so a fast hash is
/// enough and a stolen database does not yield usable keys.
/// </summary>
public sealed class ApiKeyStore(ControlPlaneDatabase database, TimeProvider clock)
{
    private const string SecretPrefix = "cpk_";

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

        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, name, role, tenant_id, created_at FROM api_keys WHERE secret_hash = $hash AND revoked_at IS NULL;";
        command.Parameters.AddWithValue("$hash", Hash(secret));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? new ApiKeyRecord(
                reader.GetString(0),
                reader.GetString(1),
                reader.GetString(2),
                reader.IsDBNull(3) ? null : reader.GetString(3),
                DateTimeOffset.Parse(reader.GetString(4), System.Globalization.CultureInfo.InvariantCulture))
            : null;
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
    }

    private static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));
}
