using System.Data.Common;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using ControlPlane.Api;
using ControlPlane.Errors;
using ControlPlane.Persistence;
using ControlPlane.Security;

namespace ControlPlane.Identity;

[GenerateSerializer, Immutable]
public sealed record User(
    [property: Id(0)] string Id,
    [property: Id(1)] string Email,
    [property: Id(2)] string? DisplayName,
    [property: Id(3)] DateTimeOffset CreatedAt,
    [property: Id(4)] string? PlatformRole);

/// <summary>A person's place in a tenant, as the team page and the API show it.</summary>
public sealed record Member(string UserId, string Email, string? DisplayName, string Role, DateTimeOffset Since);

/// <summary>
/// People: users (one per email address), their role in each tenant they belong to, and the platform role some operators
/// hold. How a person proves who they are (a local password, SSO) lives beside it; this is who they are and what they
/// may do, read by every silo from the one database.
/// </summary>
public sealed class UserDirectory(Database database, TimeProvider clock)
{
    public static readonly Migration Migration = new(
        "0030-identity",
        """
        CREATE TABLE IF NOT EXISTS users (
            id            TEXT PRIMARY KEY,
            email         TEXT NOT NULL UNIQUE,
            display_name  TEXT NULL,
            platform_role TEXT NULL,
            created_at    TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS memberships (
            tenant_id  TEXT NOT NULL,
            user_id    TEXT NOT NULL REFERENCES users (id),
            role       TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (tenant_id, user_id)
        );
        CREATE INDEX IF NOT EXISTS memberships_by_user ON memberships (user_id);
        CREATE TABLE IF NOT EXISTS sign_in_links (
            token_hash TEXT PRIMARY KEY,
            user_id    TEXT NOT NULL REFERENCES users (id),
            expires_at TEXT NOT NULL,
            used_at    TEXT NULL
        );
        """,
        """
        CREATE TABLE IF NOT EXISTS users (
            id            text        PRIMARY KEY,
            email         text        NOT NULL UNIQUE,
            display_name  text        NULL,
            platform_role text        NULL,
            created_at    timestamptz NOT NULL
        );
        CREATE TABLE IF NOT EXISTS memberships (
            tenant_id  text        NOT NULL,
            user_id    text        NOT NULL REFERENCES users (id),
            role       text        NOT NULL,
            created_at timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, user_id)
        );
        CREATE INDEX IF NOT EXISTS memberships_by_user ON memberships (user_id);
        CREATE TABLE IF NOT EXISTS sign_in_links (
            token_hash text        PRIMARY KEY,
            user_id    text        NOT NULL REFERENCES users (id),
            expires_at timestamptz NOT NULL,
            used_at    timestamptz NULL
        );
        """);

    /// <summary>How long a one-time sign-in link works.</summary>
    public static readonly TimeSpan SignInLinkLifetime = TimeSpan.FromHours(72);

    private const string UserColumns = "id, email, display_name, created_at, platform_role";

    /// <summary>The user with this email, created if there is none yet. Emails compare case-insensitively.</summary>
    public async Task<User> EnsureUserAsync(string email, string? displayName, CancellationToken cancellationToken = default)
    {
        var normalized = NormalizeEmail(email);
        if (await FindByEmailAsync(normalized, cancellationToken) is { } existing)
        {
            return existing;
        }

        var user = new User(Ids.NewUserId(), normalized, displayName, clock.GetUtcNow(), PlatformRole: null);
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        // Two requests inviting the same address at once: one insert wins, the other reads it back.
        command.CommandText = """
            INSERT INTO users (id, email, display_name, created_at) VALUES (@id, @email, @name, @at)
            ON CONFLICT (email) DO NOTHING;
            """;
        Database.AddParameter(command, "id", user.Id);
        Database.AddParameter(command, "email", user.Email);
        Database.AddParameter(command, "name", displayName);
        database.AddTimestamp(command, "at", user.CreatedAt);
        await command.ExecuteNonQueryAsync(cancellationToken);
        return await FindByEmailAsync(normalized, cancellationToken) ?? throw new InvalidOperationException($"User {normalized} vanished after its insert.");
    }

    public async Task<User?> FindAsync(string userId, CancellationToken cancellationToken = default) =>
        (await database.QueryAsync($"SELECT {UserColumns} FROM users WHERE id = @id;", ReadUser, cancellationToken, ("id", userId))).SingleOrDefault();

    public async Task<User?> FindByEmailAsync(string email, CancellationToken cancellationToken = default) =>
        (await database.QueryAsync(
            $"SELECT {UserColumns} FROM users WHERE email = @email;", ReadUser, cancellationToken, ("email", NormalizeEmail(email)))).SingleOrDefault();

    /// <summary>Every tenant the user belongs to, with the role there.</summary>
    public Task<List<(string TenantId, string Role)>> MembershipsAsync(string userId, CancellationToken cancellationToken = default) =>
        database.QueryAsync(
            "SELECT tenant_id, role FROM memberships WHERE user_id = @user ORDER BY tenant_id;",
            reader => (reader.GetString(0), reader.GetString(1)),
            cancellationToken,
            ("user", userId));

    /// <summary>The person as a principal: their platform role and every membership, read now.</summary>
    public async Task<ClaimsPrincipal?> PrincipalAsync(string userId, string authenticationType, CancellationToken cancellationToken = default)
    {
        if (await FindAsync(userId, cancellationToken) is not { } user)
        {
            return null;
        }

        var memberships = await MembershipsAsync(userId, cancellationToken);
        return Principals.Create(Principals.UserKind, user.Id, user.Email, user.PlatformRole, memberships, authenticationType);
    }

    public async Task<Page<Member>> ListMembersAsync(string tenantId, PageRequest page, CancellationToken cancellationToken = default)
    {
        var rows = await database.QueryAsync(
            """
            SELECT m.user_id, u.email, u.display_name, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id
            WHERE m.tenant_id = @tenant AND (CAST(@after AS TEXT) IS NULL OR u.email > @after) ORDER BY u.email LIMIT @limit;
            """,
            ReadMember,
            cancellationToken,
            ("tenant", tenantId),
            ("after", page.After),
            ("limit", page.Size + 1));
        return Paging.Fetched(rows, page.Size, member => member.Email);
    }

    public async Task<Member?> FindMemberAsync(string tenantId, string userId, CancellationToken cancellationToken = default) =>
        (await database.QueryAsync(
            """
            SELECT m.user_id, u.email, u.display_name, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id
            WHERE m.tenant_id = @tenant AND m.user_id = @user;
            """,
            ReadMember,
            cancellationToken,
            ("tenant", tenantId),
            ("user", userId))).SingleOrDefault();

    /// <summary>Adds the user to the tenant at <paramref name="role"/>; a conflict when they already belong to it.</summary>
    public async Task<Member> AddMemberAsync(string tenantId, User user, string role, CancellationToken cancellationToken = default)
    {
        var added = await database.ExecuteAsync(
            """
            INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES (@tenant, @user, @role, @at)
            ON CONFLICT (tenant_id, user_id) DO NOTHING;
            """,
            cancellationToken,
            ("tenant", tenantId),
            ("user", user.Id),
            ("role", role),
            ("at", database.Timestamp(clock.GetUtcNow())));
        if (added == 0)
        {
            throw new ControlPlaneException(
                ProblemKind.Conflict,
                "already-a-member",
                "Already a member",
                $"{user.Email} already belongs to this tenant. Change their role instead.");
        }

        return (await FindMemberAsync(tenantId, user.Id, cancellationToken))!;
    }

    /// <summary>
    /// Changes a member's role (null: removes them). The tenant always keeps an owner: taking the last one's role away
    /// is refused, under a lock on the tenant's team so two admins demoting the last two owners at once cannot both win.
    /// </summary>
    public async Task<Member?> ChangeMemberAsync(string tenantId, string userId, string? role, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await database.LockAsync(transaction, $"memberships/{tenantId}", cancellationToken);
        var current = await ScalarAsync(connection, transaction, "SELECT role FROM memberships WHERE tenant_id = @tenant AND user_id = @user;", tenantId, userId, cancellationToken)
            ?? throw Problems.NotFound("member", userId);
        if (current == Roles.Owner && role != Roles.Owner)
        {
            var owners = await ScalarAsync(connection, transaction, "SELECT COUNT(*) FROM memberships WHERE tenant_id = @tenant AND role = 'owner' AND user_id <> @user;", tenantId, userId, cancellationToken);
            if (owners == "0")
            {
                throw new ControlPlaneException(
                    ProblemKind.Conflict,
                    "last-owner",
                    "The tenant needs an owner",
                    "This is the tenant's only owner. Make another member an owner first, then change or remove this one.");
            }
        }

        await using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = role is null
                ? "DELETE FROM memberships WHERE tenant_id = @tenant AND user_id = @user;"
                : "UPDATE memberships SET role = @role WHERE tenant_id = @tenant AND user_id = @user;";
            Database.AddParameter(command, "tenant", tenantId);
            Database.AddParameter(command, "user", userId);
            Database.AddParameter(command, "role", role);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return role is null ? null : await FindMemberAsync(tenantId, userId, cancellationToken);
    }

    /// <summary>Every role every person holds: platform roles, then memberships by tenant.</summary>
    public async Task<List<Compliance.RoleAssignment>> RoleAssignmentsAsync(CancellationToken cancellationToken = default)
    {
        var platform = await database.QueryAsync(
            "SELECT id, email, platform_role FROM users WHERE platform_role IS NOT NULL ORDER BY email;",
            reader => new Compliance.RoleAssignment("platform", null, reader.GetString(0), reader.GetString(1), reader.GetString(2)),
            cancellationToken);
        var tenants = await database.QueryAsync(
            "SELECT m.tenant_id, m.user_id, u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id ORDER BY m.tenant_id, u.email;",
            reader => new Compliance.RoleAssignment("tenant", reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3)),
            cancellationToken);
        return [.. platform, .. tenants];
    }

    /// <summary>Gives a person a platform role (null: takes it away).</summary>
    public Task SetPlatformRoleAsync(string userId, string? role, CancellationToken cancellationToken = default) =>
        database.ExecuteAsync("UPDATE users SET platform_role = @role WHERE id = @id;", cancellationToken, ("role", role), ("id", userId));

    public Task<List<User>> ListPlatformUsersAsync(CancellationToken cancellationToken = default) =>
        database.QueryAsync($"SELECT {UserColumns} FROM users WHERE platform_role IS NOT NULL ORDER BY email;", ReadUser, cancellationToken);

    /// <summary>A link that signs the user in once, within <see cref="SignInLinkLifetime"/>; only its hash is kept.</summary>
    public async Task<(string Token, DateTimeOffset ExpiresAt)> CreateSignInLinkAsync(string userId, CancellationToken cancellationToken = default)
    {
        var token = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var expiresAt = clock.GetUtcNow() + SignInLinkLifetime;
        await database.ExecuteAsync(
            "INSERT INTO sign_in_links (token_hash, user_id, expires_at) VALUES (@hash, @user, @expires);",
            cancellationToken,
            ("hash", Hash(token)),
            ("user", userId),
            ("expires", database.Timestamp(expiresAt)));
        return (token, expiresAt);
    }

    /// <summary>The user a sign-in link is for, marking it used; null when it is unknown, used or expired.</summary>
    public async Task<User?> RedeemSignInLinkAsync(string token, CancellationToken cancellationToken = default)
    {
        if (token.Length is 0 or > 100)
        {
            return null;
        }

        var now = clock.GetUtcNow();
        // One statement: two redemptions of the same link at once cannot both succeed.
        var userIds = await database.QueryAsync(
            "UPDATE sign_in_links SET used_at = @now WHERE token_hash = @hash AND used_at IS NULL AND expires_at > @now RETURNING user_id;",
            reader => reader.GetString(0),
            cancellationToken,
            ("now", database.Timestamp(now)),
            ("hash", Hash(token)));
        return userIds.Count == 1 ? await FindAsync(userIds[0], cancellationToken) : null;
    }

    public static string NormalizeEmail(string email) => email.Trim().ToLowerInvariant();

    private static async Task<string?> ScalarAsync(
        DbConnection connection, DbTransaction transaction, string sql, string tenantId, string userId, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        Database.AddParameter(command, "tenant", tenantId);
        Database.AddParameter(command, "user", userId);
        return Convert.ToString(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static User ReadUser(DbDataReader reader) => new(
        reader.GetString(0),
        reader.GetString(1),
        reader.IsDBNull(2) ? null : reader.GetString(2),
        Database.ReadTimestamp(reader, 3),
        reader.IsDBNull(4) ? null : reader.GetString(4));

    private static Member ReadMember(DbDataReader reader) => new(
        reader.GetString(0),
        reader.GetString(1),
        reader.IsDBNull(2) ? null : reader.GetString(2),
        reader.GetString(3),
        Database.ReadTimestamp(reader, 4));

    private static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
}
