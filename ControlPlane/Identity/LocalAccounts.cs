using System.Data.Common;
using ControlPlane.Persistence;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;
using OtpNet;

namespace ControlPlane.Identity;

/// <summary>Section <c>Portal:LocalAccounts</c>: the password policy and lockout of people who sign in with a password.</summary>
public sealed class LocalAccountOptions
{
    public const string SectionName = "Portal:LocalAccounts";

    public int MinPasswordLength { get; set; } = 12;

    /// <summary>Wrong passwords or codes in a row that lock the account for <see cref="LockoutMinutes"/>.</summary>
    public int MaxFailedAttempts { get; set; } = 5;

    public int LockoutMinutes { get; set; } = 15;
}

public sealed class LocalAccountOptionsValidator : IValidateOptions<LocalAccountOptions>
{
    public ValidateOptionsResult Validate(string? name, LocalAccountOptions options)
    {
        var failures = new List<string>();
        if (options.MinPasswordLength is < 12 or > 128)
        {
            failures.Add($"Portal:LocalAccounts:MinPasswordLength must be between 12 and 128 (it is {options.MinPasswordLength}); set e.g. Portal__LocalAccounts__MinPasswordLength=12.");
        }

        if (options.MaxFailedAttempts is < 1 or > 100)
        {
            failures.Add($"Portal:LocalAccounts:MaxFailedAttempts must be between 1 and 100 (it is {options.MaxFailedAttempts}); set e.g. Portal__LocalAccounts__MaxFailedAttempts=5.");
        }

        if (options.LockoutMinutes is < 1 or > 24 * 60)
        {
            failures.Add($"Portal:LocalAccounts:LockoutMinutes must be between 1 and 1440 (it is {options.LockoutMinutes}); set e.g. Portal__LocalAccounts__LockoutMinutes=15.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

public enum PasswordCheck
{
    Succeeded,

    /// <summary>Wrong email, password or code; which of them is never said.</summary>
    Failed,

    /// <summary>The password was right and the account has a second factor: ask for the code.</summary>
    CodeRequired,

    LockedOut,
}

public sealed record PasswordSignIn(PasswordCheck Result, User? User = null, DateTimeOffset? LockedUntil = null);

/// <summary>An authenticator enrolment: the secret to type in, and the otpauth URI a QR code would carry.</summary>
public sealed record TotpEnrolment(string Secret, string Uri);

/// <summary>
/// Passwords (ASP.NET Core Identity's PBKDF2 hashes) and optional RFC 6238 codes of people who sign in to the portal
/// without an identity provider. Wrong passwords and codes count together; <see cref="LocalAccountOptions.MaxFailedAttempts"/>
/// in a row lock the account for <see cref="LocalAccountOptions.LockoutMinutes"/>, in one statement, so parallel guesses
/// on several silos count as they should.
/// </summary>
public sealed class LocalAccounts(
    Database database, UserDirectory users, IOptions<LocalAccountOptions> options, TimeProvider clock, IDataProtectionProvider dataProtection)
{
    // Authenticator secrets are stored encrypted with the data-protection key ring (the data directory's, or the
    // database's in cluster mode), marked so; a secret stored in plain text by an earlier version still reads.
    private const string ProtectedPrefix = "dp1:";
    private readonly IDataProtector _totpProtector = dataProtection.CreateProtector("ControlPlane.LocalAccounts.Totp.v1");

    public static readonly Migration Migration = new(
        "0032-local-accounts",
        """
        CREATE TABLE IF NOT EXISTS local_accounts (
            user_id             TEXT PRIMARY KEY REFERENCES users (id),
            password_hash       TEXT NULL,
            password_changed_at TEXT NULL,
            failed_attempts     INTEGER NOT NULL DEFAULT 0,
            locked_until        TEXT NULL,
            totp_secret         TEXT NULL,
            totp_pending_secret TEXT NULL,
            totp_last_step      INTEGER NULL
        );
        """,
        """
        CREATE TABLE IF NOT EXISTS local_accounts (
            user_id             text        PRIMARY KEY REFERENCES users (id),
            password_hash       text        NULL,
            password_changed_at timestamptz NULL,
            failed_attempts     integer     NOT NULL DEFAULT 0,
            locked_until        timestamptz NULL,
            totp_secret         text        NULL,
            totp_pending_secret text        NULL,
            totp_last_step      bigint      NULL
        );
        """);

    private static readonly PasswordHasher<User> s_hasher = new();

    // Verified against when the email is unknown, so a wrong address costs the same time as a wrong password.
    private static readonly string s_decoyHash = s_hasher.HashPassword(null!, "not a password anyone has");

    private LocalAccountOptions Policy => options.Value;

    /// <summary>What is wrong with a new password, as a sentence; null when it is acceptable.</summary>
    public string? PasswordError(User user, string? password)
    {
        if (string.IsNullOrEmpty(password) || password.Length < Policy.MinPasswordLength)
        {
            return $"Use at least {Policy.MinPasswordLength} characters; a few unrelated words make a good password.";
        }

        if (password.Length > 256)
        {
            return "Use at most 256 characters.";
        }

        return password.Trim().Equals(user.Email, StringComparison.OrdinalIgnoreCase)
            || password.Contains(user.Email.Split('@')[0], StringComparison.OrdinalIgnoreCase) && user.Email.Split('@')[0].Length >= 4
            ? "The password must not be or contain your email address."
            : null;
    }

    public async Task<bool> HasPasswordAsync(string userId, CancellationToken cancellationToken = default) =>
        await ReadAsync(userId, cancellationToken) is { PasswordHash: not null };

    public async Task<bool> HasTotpAsync(string userId, CancellationToken cancellationToken = default) =>
        await ReadAsync(userId, cancellationToken) is { TotpSecret: not null };

    /// <summary>Sets the password after checking the policy; clears a lockout. Throws <see cref="ArgumentException"/> with the reason when refused.</summary>
    public async Task SetPasswordAsync(User user, string password, CancellationToken cancellationToken = default)
    {
        if (PasswordError(user, password) is { } error)
        {
            throw new ArgumentException(error, nameof(password));
        }

        await EnsureRowAsync(user.Id, cancellationToken);
        await database.ExecuteAsync(
            "UPDATE local_accounts SET password_hash = @hash, password_changed_at = @now, failed_attempts = 0, locked_until = NULL WHERE user_id = @id;",
            cancellationToken,
            ("hash", s_hasher.HashPassword(user, password)),
            ("now", database.Timestamp(clock.GetUtcNow())),
            ("id", user.Id));
    }

    /// <summary>Checks an email, password and (when the account has one) code; counts failures towards the lockout.</summary>
    public async Task<PasswordSignIn> SignInAsync(string email, string password, string? code, CancellationToken cancellationToken = default)
    {
        var user = await users.FindByEmailAsync(email, cancellationToken);
        var account = user is null ? null : await ReadAsync(user.Id, cancellationToken);
        if (user is null || account?.PasswordHash is null)
        {
            s_hasher.VerifyHashedPassword(null!, s_decoyHash, password);
            return new PasswordSignIn(PasswordCheck.Failed);
        }

        var now = clock.GetUtcNow();
        if (account.LockedUntil > now)
        {
            return new PasswordSignIn(PasswordCheck.LockedOut, LockedUntil: account.LockedUntil);
        }

        if (s_hasher.VerifyHashedPassword(user, account.PasswordHash, password) == PasswordVerificationResult.Failed)
        {
            return await FailAsync(user.Id, cancellationToken);
        }

        if (account.TotpSecret is not null)
        {
            if (string.IsNullOrWhiteSpace(code))
            {
                return new PasswordSignIn(PasswordCheck.CodeRequired, user);
            }

            if (!await AcceptCodeAsync(user.Id, account.TotpSecret, account.TotpLastStep, code, cancellationToken))
            {
                return await FailAsync(user.Id, cancellationToken);
            }
        }

        await database.ExecuteAsync("UPDATE local_accounts SET failed_attempts = 0 WHERE user_id = @id;", cancellationToken, ("id", user.Id));
        return new PasswordSignIn(PasswordCheck.Succeeded, user);
    }

    /// <summary>A signed-in person proves again that they are at the keyboard (before a secret is shown).</summary>
    public async Task<PasswordCheck> ConfirmPasswordAsync(string userId, string password, CancellationToken cancellationToken = default)
    {
        var user = await users.FindAsync(userId, cancellationToken);
        return user is null ? PasswordCheck.Failed : (await SignInAsync(user.Email, password, code: null, cancellationToken)).Result switch
        {
            // The second factor was proven at sign-in; here the password alone confirms presence.
            PasswordCheck.CodeRequired => PasswordCheck.Succeeded,
            var result => result,
        };
    }

    /// <summary>Starts (or restarts) enrolling an authenticator: a new secret, used only once a code from it is confirmed.</summary>
    public async Task<TotpEnrolment> BeginTotpEnrolmentAsync(User user, string issuer, CancellationToken cancellationToken = default)
    {
        var secret = Base32Encoding.ToString(KeyGeneration.GenerateRandomKey(20)).TrimEnd('=');
        await EnsureRowAsync(user.Id, cancellationToken);
        await database.ExecuteAsync(
            "UPDATE local_accounts SET totp_pending_secret = @secret WHERE user_id = @id;", cancellationToken, ("secret", ProtectedPrefix + _totpProtector.Protect(secret)), ("id", user.Id));
        return new TotpEnrolment(secret, new OtpUri(OtpType.Totp, secret, user.Email, issuer).ToString());
    }

    /// <summary>The pending secret becomes the account's second factor when <paramref name="code"/> is a current code of it.</summary>
    public async Task<bool> ConfirmTotpAsync(string userId, string code, CancellationToken cancellationToken = default)
    {
        if (await ReadAsync(userId, cancellationToken) is not { TotpPendingSecret: { } pending } || !Matches(pending, code, out var step))
        {
            return false;
        }

        await database.ExecuteAsync(
            "UPDATE local_accounts SET totp_secret = totp_pending_secret, totp_pending_secret = NULL, totp_last_step = @step WHERE user_id = @id;",
            cancellationToken,
            ("step", step),
            ("id", userId));
        return true;
    }

    /// <summary>Whether the code is valid now (one step of clock drift either way) and was not used before.</summary>
    private async Task<bool> AcceptCodeAsync(string userId, string secret, long? lastStep, string code, CancellationToken cancellationToken)
    {
        if (!Matches(secret, code, out var step) || step <= lastStep)
        {
            return false;
        }

        // Compare-and-set on the last step: the same code presented twice at once is accepted once.
        return await database.ExecuteAsync(
            "UPDATE local_accounts SET totp_last_step = @step WHERE user_id = @id AND (totp_last_step IS NULL OR totp_last_step < @step);",
            cancellationToken,
            ("step", step),
            ("id", userId)) == 1;
    }

    private bool Matches(string secret, string code, out long step)
    {
        step = 0;
        var digits = code.Replace(" ", "", StringComparison.Ordinal).Trim();
        return digits.Length == 6
            && digits.All(char.IsAsciiDigit)
            && new Totp(Base32Encoding.ToBytes(secret)).VerifyTotp(clock.GetUtcNow().UtcDateTime, digits, out step, VerificationWindow.RfcSpecifiedNetworkDelay);
    }

    private async Task<PasswordSignIn> FailAsync(string userId, CancellationToken cancellationToken)
    {
        var lockedUntil = clock.GetUtcNow().AddMinutes(Policy.LockoutMinutes);
        // One statement: counts the failure and, at the limit, locks and starts counting again.
        var locked = await database.QueryAsync(
            """
            UPDATE local_accounts
            SET locked_until = CASE WHEN failed_attempts + 1 >= @max THEN @until ELSE locked_until END,
                failed_attempts = CASE WHEN failed_attempts + 1 >= @max THEN 0 ELSE failed_attempts + 1 END
            WHERE user_id = @id
            RETURNING locked_until;
            """,
            reader => reader.IsDBNull(0) ? (DateTimeOffset?)null : Database.ReadTimestamp(reader, 0),
            cancellationToken,
            ("max", Policy.MaxFailedAttempts),
            ("until", database.Timestamp(lockedUntil)),
            ("id", userId));
        return locked.SingleOrDefault() is { } until && until >= lockedUntil.AddSeconds(-1)
            ? new PasswordSignIn(PasswordCheck.LockedOut, LockedUntil: until)
            : new PasswordSignIn(PasswordCheck.Failed);
    }

    private Task<int> EnsureRowAsync(string userId, CancellationToken cancellationToken) =>
        database.ExecuteAsync("INSERT INTO local_accounts (user_id) VALUES (@id) ON CONFLICT (user_id) DO NOTHING;", cancellationToken, ("id", userId));

    private async Task<AccountRow?> ReadAsync(string userId, CancellationToken cancellationToken) =>
        (await database.QueryAsync(
            "SELECT password_hash, locked_until, totp_secret, totp_pending_secret, totp_last_step FROM local_accounts WHERE user_id = @id;",
            ReadRow,
            cancellationToken,
            ("id", userId))).SingleOrDefault() is { } row
            ? row with { TotpSecret = Unprotect(row.TotpSecret), TotpPendingSecret = Unprotect(row.TotpPendingSecret) }
            : null;

    private string? Unprotect(string? stored) =>
        stored is not null && stored.StartsWith(ProtectedPrefix, StringComparison.Ordinal) ? _totpProtector.Unprotect(stored[ProtectedPrefix.Length..]) : stored;

    private static AccountRow ReadRow(DbDataReader reader) => new(
        reader.IsDBNull(0) ? null : reader.GetString(0),
        reader.IsDBNull(1) ? null : Database.ReadTimestamp(reader, 1),
        reader.IsDBNull(2) ? null : reader.GetString(2),
        reader.IsDBNull(3) ? null : reader.GetString(3),
        reader.IsDBNull(4) ? null : reader.GetInt64(4));

    private sealed record AccountRow(string? PasswordHash, DateTimeOffset? LockedUntil, string? TotpSecret, string? TotpPendingSecret, long? TotpLastStep);
}
