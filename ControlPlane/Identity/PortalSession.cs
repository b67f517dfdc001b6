using System.Globalization;
using System.Security.Claims;
using ControlPlane.Security;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;

namespace ControlPlane.Identity;

/// <summary>
/// A person's session in the portal: an encrypted, HTTP-only, <c>__Host-</c> cookie that names the user. Their roles are
/// read again from the <see cref="UserDirectory"/> at most every <see cref="RefreshEvery"/>, so a member removed or
/// demoted loses the rights within that time, not when the session ends. The REST API takes API keys only; the cookie
/// opens the portal's own pages, which check the same permissions (<see cref="Access"/>).
/// </summary>
public static class PortalSession
{
    public const string Scheme = "portal";
    public const string CookieName = "__Host-controlplane";
    public static readonly TimeSpan RefreshEvery = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromHours(8);

    private const string RefreshedClaim = "refreshed_at";
    private const string PasswordConfirmedClaim = "password_confirmed_at";

    public static AuthenticationBuilder AddPortalSession(this AuthenticationBuilder authentication)
    {
        authentication.Services.AddScoped<PortalCookieEvents>();
        return authentication.AddCookie(Scheme, cookie =>
        {
            cookie.Cookie.Name = CookieName;
            cookie.Cookie.HttpOnly = true;
            // Browsers accept Secure cookies from http://localhost and 127.0.0.1, so the embedded default works too.
            cookie.Cookie.SecurePolicy = CookieSecurePolicy.Always;
            cookie.Cookie.SameSite = SameSiteMode.Lax;
            cookie.Cookie.Path = "/";
            cookie.ExpireTimeSpan = IdleTimeout;
            cookie.SlidingExpiration = true;
            cookie.LoginPath = "/portal/sign-in";
            cookie.LogoutPath = "/portal/sign-out";
            cookie.AccessDeniedPath = "/portal/forbidden";
            cookie.EventsType = typeof(PortalCookieEvents);
        });
    }

    /// <summary>
    /// Signs the person in: a fresh principal from the directory, in a new cookie. <paramref name="passwordConfirmed"/>:
    /// they just typed their password, which counts as a confirmation (<see cref="PasswordConfirmedAt"/>).
    /// </summary>
    public static async Task SignInAsync(HttpContext context, UserDirectory users, TimeProvider clock, string userId, string method, bool passwordConfirmed = false)
    {
        var principal = await users.PrincipalAsync(userId, Scheme, context.RequestAborted)
            ?? throw new InvalidOperationException($"User {userId} does not exist.");
        var now = clock.GetUtcNow();
        Stamp(principal, now, method);
        if (passwordConfirmed)
        {
            ((ClaimsIdentity)principal.Identity!).AddClaim(new Claim(PasswordConfirmedClaim, now.ToString("O", CultureInfo.InvariantCulture)));
        }

        await context.SignInAsync(Scheme, principal, new AuthenticationProperties { IsPersistent = false, AllowRefresh = true });
    }

    /// <summary>When the person last proved they are at the keyboard with their password in this session (null: not yet).</summary>
    public static DateTimeOffset? PasswordConfirmedAt(ClaimsPrincipal principal) =>
        principal.FindFirstValue(PasswordConfirmedClaim) is { } value
        && DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var at)
            ? at
            : null;

    /// <summary>Records in the session's cookie that the person has just confirmed their password.</summary>
    public static async Task ConfirmPasswordAsync(HttpContext context, TimeProvider clock)
    {
        var identity = new ClaimsIdentity(context.User.Claims.Where(claim => claim.Type != PasswordConfirmedClaim), Scheme);
        identity.AddClaim(new Claim(PasswordConfirmedClaim, clock.GetUtcNow().ToString("O", CultureInfo.InvariantCulture)));
        await context.SignInAsync(Scheme, new ClaimsPrincipal(identity), new AuthenticationProperties { IsPersistent = false, AllowRefresh = true });
    }

    public static Task SignOutAsync(HttpContext context) => context.SignOutAsync(Scheme);

    /// <summary>How the person signed in: <c>password</c>, <c>password+totp</c>, <c>link</c>, <c>sso</c>.</summary>
    public const string AuthenticationMethodClaim = "amr";

    internal static bool IsFresh(ClaimsPrincipal principal, DateTimeOffset now) =>
        principal.FindFirstValue(RefreshedClaim) is { } refreshed
        && DateTimeOffset.TryParse(refreshed, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var at)
        && now - at < RefreshEvery;

    /// <summary>Carries the session's password confirmation over to the principal re-read from the directory.</summary>
    internal static void KeepConfirmation(ClaimsPrincipal from, ClaimsPrincipal to)
    {
        if (from.FindFirst(PasswordConfirmedClaim) is { } confirmed)
        {
            ((ClaimsIdentity)to.Identity!).AddClaim(new Claim(PasswordConfirmedClaim, confirmed.Value));
        }
    }

    internal static void Stamp(ClaimsPrincipal principal, DateTimeOffset at, string method)
    {
        var identity = (ClaimsIdentity)principal.Identity!;
        identity.AddClaim(new Claim(RefreshedClaim, at.ToString("O", CultureInfo.InvariantCulture)));
        identity.AddClaim(new Claim(AuthenticationMethodClaim, method));
    }
}

/// <summary>Reads the person's roles again when the session's copy is older than <see cref="PortalSession.RefreshEvery"/>.</summary>
public sealed class PortalCookieEvents(UserDirectory users, TimeProvider clock) : CookieAuthenticationEvents
{
    public override async Task ValidatePrincipal(CookieValidatePrincipalContext context)
    {
        var principal = context.Principal!;
        var now = clock.GetUtcNow();
        if (PortalSession.IsFresh(principal, now))
        {
            return;
        }

        var fresh = principal.Id() is { } userId ? await users.PrincipalAsync(userId, PortalSession.Scheme, context.HttpContext.RequestAborted) : null;
        if (fresh is null)
        {
            context.RejectPrincipal();
            await context.HttpContext.SignOutAsync(PortalSession.Scheme);
            return;
        }

        PortalSession.Stamp(fresh, now, principal.FindFirstValue(PortalSession.AuthenticationMethodClaim) ?? "unknown");
        PortalSession.KeepConfirmation(principal, fresh);
        context.ReplacePrincipal(fresh);
        context.ShouldRenew = true;
    }
}
