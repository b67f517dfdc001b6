using ControlPlane.Identity;
using ControlPlane.Portal;
using ControlPlane.Tests.Support;
using Microsoft.Data.Sqlite;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;
using OtpNet;

namespace ControlPlane.Tests.Security;

/// <summary>Local accounts on the real SQLite schema: the password policy, lockout and its end, and TOTP with replay refused.</summary>
public sealed class LocalAccountsTests : IDisposable
{
    private const string Password = "correct horse battery staple";

    private readonly TestDirectory _directory = new();
    private readonly ManualClock _clock = new(new DateTimeOffset(2026, 12, 2, 6, 0, 0, TimeSpan.Zero));
    private readonly UserDirectory _users;
    private readonly LocalAccounts _accounts;

    public LocalAccountsTests()
    {
        var database = TestSchema.Sqlite(_directory.Path);
        _users = new UserDirectory(database, _clock);
        _accounts = new LocalAccounts(
            database, _users, Options.Create(new LocalAccountOptions { MaxFailedAttempts = 3, LockoutMinutes = 10 }), _clock, new EphemeralDataProtectionProvider());
    }

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task The_password_policy_refuses_short_passwords_and_the_email_and_a_refused_password_is_not_set()
    {
        var ada = await _users.EnsureUserAsync("ada@example.com", null);
        Assert.Contains("12 characters", _accounts.PasswordError(ada, "short one"));
        Assert.Contains("email", _accounts.PasswordError(ada, "ada@example.com"));
        var grace = await _users.EnsureUserAsync("grace.hopper@example.com", null);
        Assert.Contains("email", _accounts.PasswordError(grace, "I am Grace.Hopper, 2026"));
        Assert.Null(_accounts.PasswordError(ada, Password));
        await Assert.ThrowsAsync<ArgumentException>(() => _accounts.SetPasswordAsync(ada, "too short"));
        Assert.False(await _accounts.HasPasswordAsync(ada.Id));
    }

    [Fact]
    public async Task Wrong_passwords_lock_the_account_for_the_configured_time_even_against_the_right_one_then_it_opens()
    {
        var ada = await _users.EnsureUserAsync("ada@example.com", null);
        await _accounts.SetPasswordAsync(ada, Password);

        Assert.Equal(PasswordCheck.Failed, (await _accounts.SignInAsync("ada@example.com", "wrong guess one", null)).Result);
        Assert.Equal(PasswordCheck.Failed, (await _accounts.SignInAsync("ADA@example.com", "wrong guess two", null)).Result);
        var third = await _accounts.SignInAsync("ada@example.com", "wrong guess three", null);
        Assert.Equal(PasswordCheck.LockedOut, third.Result);
        Assert.Equal(_clock.GetUtcNow().AddMinutes(10), third.LockedUntil);
        Assert.Equal(PasswordCheck.LockedOut, (await _accounts.SignInAsync("ada@example.com", Password, null)).Result);

        _clock.Advance(TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(1));
        var after = await _accounts.SignInAsync("ada@example.com", Password, null);
        Assert.Equal(PasswordCheck.Succeeded, after.Result);
        Assert.Equal(ada.Id, after.User!.Id);
        Assert.Equal(PasswordCheck.Failed, (await _accounts.SignInAsync("nobody@example.com", Password, null)).Result);
    }

    [Fact]
    public async Task An_authenticator_is_used_only_once_confirmed_and_each_code_signs_in_once()
    {
        var ada = await _users.EnsureUserAsync("ada@example.com", null);
        await _accounts.SetPasswordAsync(ada, Password);
        var enrolment = await _accounts.BeginTotpEnrolmentAsync(ada, "Control plane");
        Assert.StartsWith("otpauth://totp/", enrolment.Uri, StringComparison.Ordinal);
        var totp = new Totp(Base32Encoding.ToBytes(enrolment.Secret));

        // Not yet confirmed: the password alone still signs in; a wrong code does not confirm.
        Assert.Equal(PasswordCheck.Succeeded, (await _accounts.SignInAsync("ada@example.com", Password, null)).Result);
        Assert.False(await _accounts.ConfirmTotpAsync(ada.Id, "000000" == totp.ComputeTotp(_clock.GetUtcNow().UtcDateTime) ? "111111" : "000000"));
        Assert.True(await _accounts.ConfirmTotpAsync(ada.Id, totp.ComputeTotp(_clock.GetUtcNow().UtcDateTime)));
        Assert.True(await _accounts.HasTotpAsync(ada.Id));

        // The secret is stored encrypted: it is in none of the database's files (the file and its write-ahead log).
        SqliteConnection.ClearAllPools();
        var files = Directory.GetFiles(_directory.Path, "controlplane.db*");
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            Assert.Equal(-1, (await File.ReadAllBytesAsync(file)).AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(enrolment.Secret)));
        }

        _clock.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(PasswordCheck.CodeRequired, (await _accounts.SignInAsync("ada@example.com", Password, null)).Result);
        var code = totp.ComputeTotp(_clock.GetUtcNow().UtcDateTime);
        Assert.Equal(PasswordCheck.Succeeded, (await _accounts.SignInAsync("ada@example.com", Password, code)).Result);
        Assert.Equal(PasswordCheck.Failed, (await _accounts.SignInAsync("ada@example.com", Password, code)).Result);
    }

    [Fact]
    public void Settings_out_of_range_are_refused_at_start_up_with_the_setting_to_change()
    {
        var accounts = new LocalAccountOptionsValidator().Validate(null, new LocalAccountOptions { MinPasswordLength = 8, MaxFailedAttempts = 0, LockoutMinutes = 0 });
        Assert.True(accounts.Failed);
        Assert.Contains("Portal__LocalAccounts__MinPasswordLength", accounts.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("Portal__LocalAccounts__MaxFailedAttempts", accounts.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("Portal__LocalAccounts__LockoutMinutes", accounts.FailureMessage, StringComparison.Ordinal);
        var portal = new PortalOptionsValidator().Validate(null, new PortalOptions { ReauthenticateAfterMinutes = 0 });
        Assert.Contains("Portal__ReauthenticateAfterMinutes", portal.FailureMessage, StringComparison.Ordinal);
        Assert.True(new LocalAccountOptionsValidator().Validate(null, new LocalAccountOptions()).Succeeded);
    }

    private sealed class ManualClock(DateTimeOffset start) : TimeProvider
    {
        private DateTimeOffset _now = start;

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }
}
