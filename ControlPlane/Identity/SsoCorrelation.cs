using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.WebUtilities;

namespace ControlPlane.Identity;

/// <summary>
/// What one SSO sign-in must remember between leaving for the provider and coming back: the tenant, the <c>state</c>
/// and <c>nonce</c> it sent, the PKCE verifier and the redirect URI. Kept in the browser, in a cookie encrypted and
/// time-limited by data protection (<see cref="Lifetime"/>), scoped to <c>/portal/sso</c>, HTTP-only, Secure and
/// SameSite=Lax (the provider's redirect back is a top-level GET, which Lax lets through).
/// </summary>
public sealed record SsoCorrelation(string TenantId, string State, string Nonce, string CodeVerifier, string RedirectUri)
{
    public const string CookieName = "controlplane-sso";
    public const string CookiePath = "/portal/sso";
    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(10);

    private const string Purpose = "ControlPlane.Identity.Sso.Correlation";

    public static SsoCorrelation Start(string tenantId, string redirectUri) =>
        new(tenantId, RandomValue(), RandomValue(), RandomValue(), redirectUri);

    /// <summary>PKCE S256 (RFC 7636 §4.2): the base64url SHA-256 of the verifier.</summary>
    public string CodeChallenge => WebEncoders.Base64UrlEncode(SHA256.HashData(Encoding.ASCII.GetBytes(CodeVerifier)));

    public bool Matches(string? state) =>
        state is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(state), Encoding.UTF8.GetBytes(State));

    public void Write(HttpContext context, IDataProtectionProvider dataProtection, DateTimeOffset now)
    {
        var protector = dataProtection.CreateProtector(Purpose).ToTimeLimitedDataProtector();
        var value = protector.Protect(JsonSerializer.Serialize(this), now + Lifetime);
        context.Response.Cookies.Append(CookieName, value, Options(now + Lifetime));
    }

    /// <summary>The sign-in this browser started, if its cookie is there, genuine and not expired; the cookie is removed either way.</summary>
    public static SsoCorrelation? Take(HttpContext context, IDataProtectionProvider dataProtection)
    {
        if (!context.Request.Cookies.TryGetValue(CookieName, out var value))
        {
            return null;
        }

        context.Response.Cookies.Delete(CookieName, Options(expires: null));
        try
        {
            var protector = dataProtection.CreateProtector(Purpose).ToTimeLimitedDataProtector();
            return JsonSerializer.Deserialize<SsoCorrelation>(protector.Unprotect(value));
        }
        catch (Exception invalid) when (invalid is CryptographicException or JsonException or FormatException)
        {
            return null;
        }
    }

    private static CookieOptions Options(DateTimeOffset? expires) => new()
    {
        HttpOnly = true,
        Secure = true,
        SameSite = SameSiteMode.Lax,
        Path = CookiePath,
        Expires = expires,
        IsEssential = true,
    };

    /// <summary>256 random bits, base64url: as a PKCE verifier it is 43 characters, the shortest RFC 7636 allows.</summary>
    private static string RandomValue() => WebEncoders.Base64UrlEncode(RandomNumberGenerator.GetBytes(32));
}
