using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using ControlPlane.Errors;
using ControlPlane.Persistence;
using Microsoft.AspNetCore.DataProtection;

namespace ControlPlane.Identity;

/// <summary>
/// Each tenant's SSO settings, the email domains they claim (a domain belongs to one tenant at most: the primary key
/// says so), and the sign-in states already redeemed. The client secret is stored encrypted with data protection under
/// a purpose of its own; it is decrypted only to call the provider's token endpoint.
/// </summary>
public sealed class SsoSettingsStore(Database database, IDataProtectionProvider dataProtection, TimeProvider clock)
{
    public static readonly Migration Migration = new(
        "0033-sso-settings",
        """
        CREATE TABLE IF NOT EXISTS sso_settings (
            tenant_id     TEXT PRIMARY KEY,
            issuer        TEXT NOT NULL,
            client_id     TEXT NOT NULL,
            client_secret TEXT NOT NULL,
            default_role  TEXT NOT NULL,
            enabled       INTEGER NOT NULL,
            updated_at    TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS sso_email_domains (
            domain    TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL REFERENCES sso_settings (tenant_id) ON DELETE CASCADE
        );
        CREATE INDEX IF NOT EXISTS sso_email_domains_by_tenant ON sso_email_domains (tenant_id);
        CREATE TABLE IF NOT EXISTS sso_redeemed_states (
            state_hash TEXT PRIMARY KEY,
            expires_at TEXT NOT NULL
        );
        """,
        """
        CREATE TABLE IF NOT EXISTS sso_settings (
            tenant_id     text        PRIMARY KEY,
            issuer        text        NOT NULL,
            client_id     text        NOT NULL,
            client_secret text        NOT NULL,
            default_role  text        NOT NULL,
            enabled       boolean     NOT NULL,
            updated_at    timestamptz NOT NULL
        );
        CREATE TABLE IF NOT EXISTS sso_email_domains (
            domain    text PRIMARY KEY,
            tenant_id text NOT NULL REFERENCES sso_settings (tenant_id) ON DELETE CASCADE
        );
        CREATE INDEX IF NOT EXISTS sso_email_domains_by_tenant ON sso_email_domains (tenant_id);
        CREATE TABLE IF NOT EXISTS sso_redeemed_states (
            state_hash text        PRIMARY KEY,
            expires_at timestamptz NOT NULL
        );
        """);

    private const string SettingsColumns = "tenant_id, issuer, client_id, client_secret, default_role, enabled, updated_at";

    private readonly IDataProtector _secrets = dataProtection.CreateProtector("ControlPlane.Identity.Sso.ClientSecret");

    public async Task<SsoSettings?> GetAsync(string tenantId, CancellationToken cancellationToken = default) =>
        await ReadSettingsAsync($"SELECT {SettingsColumns} FROM sso_settings WHERE tenant_id = @key;", tenantId, cancellationToken);

    /// <summary>Every tenant's settings, for the evidence bundle; the client secrets stay protected.</summary>
    public async Task<List<SsoSettings>> ListAsync(CancellationToken cancellationToken = default)
    {
        var tenantIds = await database.QueryAsync("SELECT tenant_id FROM sso_settings ORDER BY tenant_id;", reader => reader.GetString(0), cancellationToken);
        var settings = new List<SsoSettings>();
        foreach (var tenantId in tenantIds)
        {
            if (await GetAsync(tenantId, cancellationToken) is { } found)
            {
                settings.Add(found);
            }
        }

        return settings;
    }

    /// <summary>The tenant whose enabled SSO claims <paramref name="domain"/>; null when none does.</summary>
    public async Task<SsoSettings?> FindEnabledByDomainAsync(string domain, CancellationToken cancellationToken = default) =>
        await ReadSettingsAsync(
            $"SELECT {SettingsColumns} FROM sso_settings WHERE enabled AND tenant_id = (SELECT tenant_id FROM sso_email_domains WHERE domain = @key);",
            SsoSettingsChange.NormalizeDomain(domain),
            cancellationToken);

    /// <summary>
    /// Stores the tenant's settings whole, claiming its domains. A domain another tenant has claimed is a conflict, and
    /// nothing changes; two tenants claiming one domain at once cannot both win (the domain is the primary key).
    /// </summary>
    public async Task<SsoSettings> SaveAsync(string tenantId, SsoSettingsChange change, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await database.LockAsync(transaction, "sso_email_domains", cancellationToken);
        var protectedSecret = change.ClientSecret is { } secret
            ? _secrets.Protect(secret)
            : await ScalarAsync(connection, transaction, "SELECT client_secret FROM sso_settings WHERE tenant_id = @tenant;", cancellationToken, ("tenant", tenantId))
                ?? throw new InvalidOperationException($"Tenant {tenantId} has no stored client secret to keep.");
        var updatedAt = clock.GetUtcNow();
        await ExecuteAsync(
            connection,
            transaction,
            """
            INSERT INTO sso_settings (tenant_id, issuer, client_id, client_secret, default_role, enabled, updated_at)
            VALUES (@tenant, @issuer, @client, @secret, @role, @enabled, @at)
            ON CONFLICT (tenant_id) DO UPDATE SET issuer = excluded.issuer, client_id = excluded.client_id, client_secret = excluded.client_secret,
                default_role = excluded.default_role, enabled = excluded.enabled, updated_at = excluded.updated_at;
            """,
            cancellationToken,
            ("tenant", tenantId),
            ("issuer", change.Issuer),
            ("client", change.ClientId),
            ("secret", protectedSecret),
            ("role", change.DefaultRole.Name),
            ("enabled", change.Enabled),
            ("at", database.Timestamp(updatedAt)));
        await ExecuteAsync(connection, transaction, "DELETE FROM sso_email_domains WHERE tenant_id = @tenant;", cancellationToken, ("tenant", tenantId));
        foreach (var domain in change.AllowedEmailDomains)
        {
            var claimed = await ExecuteAsync(
                connection,
                transaction,
                "INSERT INTO sso_email_domains (domain, tenant_id) VALUES (@domain, @tenant) ON CONFLICT (domain) DO NOTHING;",
                cancellationToken,
                ("domain", domain),
                ("tenant", tenantId));
            if (claimed == 0)
            {
                throw new ControlPlaneException(
                    ProblemKind.Conflict,
                    "sso-domain-claimed",
                    "Email domain already claimed",
                    $"Email domain '{domain}' is already claimed by another tenant's SSO. A domain signs in through one tenant only; remove it from this request, or ask support if your organization owns it.",
                    new Dictionary<string, string> { ["domain"] = domain });
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return new SsoSettings(tenantId, change.Issuer, change.ClientId, protectedSecret, change.AllowedEmailDomains, change.DefaultRole.Name, change.Enabled, updatedAt);
    }

    /// <summary>Removes the tenant's SSO and frees its domains; false when it had none.</summary>
    public async Task<bool> DeleteAsync(string tenantId, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await ExecuteAsync(connection, transaction, "DELETE FROM sso_email_domains WHERE tenant_id = @tenant;", cancellationToken, ("tenant", tenantId));
        var deleted = await ExecuteAsync(connection, transaction, "DELETE FROM sso_settings WHERE tenant_id = @tenant;", cancellationToken, ("tenant", tenantId));
        await transaction.CommitAsync(cancellationToken);
        return deleted > 0;
    }

    /// <summary>The client secret in clear, to authenticate at the token endpoint; never for an answer or a log.</summary>
    public string RevealClientSecret(SsoSettings settings) => _secrets.Unprotect(settings.ProtectedClientSecret);

    /// <summary>
    /// Marks a sign-in's state as used, in the database every silo shares; false when it already was, so a callback
    /// (its cookie included) that is replayed is refused. Expired marks are swept on the way.
    /// </summary>
    public async Task<bool> RedeemStateAsync(string state, DateTimeOffset expiresAt, CancellationToken cancellationToken = default)
    {
        var now = database.Timestamp(clock.GetUtcNow());
        await database.ExecuteAsync("DELETE FROM sso_redeemed_states WHERE expires_at < @now;", cancellationToken, ("now", now));
        var inserted = await database.ExecuteAsync(
            "INSERT INTO sso_redeemed_states (state_hash, expires_at) VALUES (@hash, @expires) ON CONFLICT (state_hash) DO NOTHING;",
            cancellationToken,
            ("hash", Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(state)))),
            ("expires", database.Timestamp(expiresAt)));
        return inserted == 1;
    }

    private async Task<SsoSettings?> ReadSettingsAsync(string sql, string key, CancellationToken cancellationToken)
    {
        var rows = await database.QueryAsync(
            sql,
            reader => new SsoSettings(
                reader.GetString(0),
                reader.GetString(1),
                reader.GetString(2),
                reader.GetString(3),
                [],
                reader.GetString(4),
                reader.GetBoolean(5),
                Database.ReadTimestamp(reader, 6)),
            cancellationToken,
            ("key", key));
        if (rows.SingleOrDefault() is not { } settings)
        {
            return null;
        }

        var domains = await database.QueryAsync(
            "SELECT domain FROM sso_email_domains WHERE tenant_id = @tenant ORDER BY domain;", reader => reader.GetString(0), cancellationToken, ("tenant", settings.TenantId));
        return settings with { AllowedEmailDomains = domains };
    }

    private static async Task<int> ExecuteAsync(
        DbConnection connection, DbTransaction transaction, string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<string?> ScalarAsync(
        DbConnection connection, DbTransaction transaction, string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    private static DbCommand Command(DbConnection connection, DbTransaction transaction, string sql, (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            Database.AddParameter(command, name, value);
        }

        return command;
    }
}
