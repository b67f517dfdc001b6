using System.Security.Cryptography;
using ControlPlane.Auditing;
using ControlPlane.Errors;
using ControlPlane.Security;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Options;

namespace ControlPlane.Identity;

/// <summary>
/// A person's sign-in through their organization's OpenID Connect provider: the authorization code flow with PKCE
/// (S256), <c>state</c> and <c>nonce</c> kept in <see cref="SsoCorrelation"/>'s cookie, ending in the portal's session
/// (<see cref="PortalSession"/>). Every refusal ends on the sign-in page with a reason code, a log line and an audit record.
/// </summary>
public sealed partial class SsoSignIn(
    SsoSettingsStore store,
    SsoProvider provider,
    IDataProtectionProvider dataProtection,
    UserDirectory users,
    AuditLog audit,
    TimeProvider clock,
    ILogger<SsoSignIn> logger)
{
    public const string StartPath = "/portal/sso/start";
    public const string CallbackPath = "/portal/sso/callback";
    public const string SignInPage = "/portal/sign-in";
    public const string AuditAction = "sso.sign-in";

    /// <summary>Where a sign-in lands when no tenant's SSO takes the address: the same answer whether or not one exists.</summary>
    public const string Unavailable = SignInPage + "?sso=unavailable";

    /// <summary>The redirect URI an owner registers at the provider: this portal's callback.</summary>
    public static string RedirectUri(HttpRequest request) =>
        request.HttpContext.RequestServices.GetRequiredService<IOptions<Portal.PortalOptions>>().Value.Link(request, CallbackPath);

    public static string FailurePage(string reason) => $"{SignInPage}?error={Uri.EscapeDataString(reason)}";

    /// <summary>Finds the tenant whose enabled SSO takes the email's domain and sends the browser to its provider.</summary>
    public async Task<string> StartAsync(HttpContext context, string? email)
    {
        if (MemberEndpoints.EmailError(email) is not null
            || await store.FindEnabledByDomainAsync(email!.Trim()[(email.Trim().LastIndexOf('@') + 1)..], context.RequestAborted) is not { } settings)
        {
            return Unavailable;
        }

        try
        {
            var configuration = await provider.ConfigurationAsync(settings.Issuer, context.RequestAborted);
            var correlation = SsoCorrelation.Start(settings.TenantId, RedirectUri(context.Request));
            correlation.Write(context, dataProtection, clock.GetUtcNow());
            return QueryHelpers.AddQueryString(configuration.AuthorizationEndpoint, new Dictionary<string, string?>
            {
                ["response_type"] = "code",
                ["client_id"] = settings.ClientId,
                ["redirect_uri"] = correlation.RedirectUri,
                ["scope"] = "openid email profile",
                ["state"] = correlation.State,
                ["nonce"] = correlation.Nonce,
                ["code_challenge"] = correlation.CodeChallenge,
                ["code_challenge_method"] = "S256",
                ["login_hint"] = email.Trim(),
            });
        }
        catch (SsoSignInException refused)
        {
            LogStartFailed(refused.InnerException, settings.TenantId, refused.Reason, refused.Message);
            return FailurePage(refused.Reason);
        }
    }

    /// <summary>The sign-in's audit record, from where the browser came (the person is not signed in on this request yet).</summary>
    private static AuditEntry Entry(HttpContext context, Attempt attempt, string? tenantId, string? target, string outcome, string? details) =>
        AuditedRequests.Entry(context, tenantId, AuditAction, target, outcome, details) with { Actor = attempt.Actor };

    /// <summary>Completes the sign-in the provider sent the browser back from; answers where to send the browser next.</summary>
    public async Task<string> CompleteAsync(HttpContext context)
    {
        var correlation = SsoCorrelation.Take(context, dataProtection);
        var attempt = new Attempt(correlation?.TenantId);
        try
        {
            var tenantId = await VerifyAsync(context, correlation, attempt);
            await PortalSession.SignInAsync(context, users, clock, attempt.UserId!, "sso");
            await audit.RecordAsync(Entry(context, attempt, tenantId, attempt.UserId, "succeeded", attempt.Details), CancellationToken.None);
            LogSignedIn(tenantId, attempt.UserId!);
            return $"/portal/tenants/{tenantId}";
        }
        catch (SsoSignInException refused)
        {
            LogRefused(refused.InnerException, attempt.TenantId, refused.Reason, refused.Message);
            await audit.RecordAsync(Entry(context, attempt, attempt.TenantId, attempt.Email, $"rejected:{refused.Reason}", refused.Message), CancellationToken.None);
            return FailurePage(refused.Reason);
        }
        catch (Exception failure) when (!context.RequestAborted.IsCancellationRequested)
        {
            LogFailed(failure, attempt.TenantId);
            await audit.RecordAsync(
                Entry(context, attempt, attempt.TenantId, attempt.Email, "rejected:internal-error", "The sign-in failed on the control plane's side."), CancellationToken.None);
            return FailurePage("internal-error");
        }
    }

    /// <summary>Every check of the callback, in order; answers the tenant, with the person (created and made a member if new) in <paramref name="attempt"/>.</summary>
    private async Task<string> VerifyAsync(HttpContext context, SsoCorrelation? correlation, Attempt attempt)
    {
        var query = context.Request.Query;
        var cancellationToken = context.RequestAborted;
        if (correlation is null)
        {
            throw new SsoSignInException("sign-in-expired", "No SSO sign-in is in progress in this browser (its cookie is missing, altered or older than 10 minutes).");
        }

        if (!correlation.Matches(query["state"]))
        {
            throw new SsoSignInException("state-mismatch", "The callback's state is not the one this browser's sign-in sent.");
        }

        if (!await store.RedeemStateAsync(correlation.State, clock.GetUtcNow() + SsoCorrelation.Lifetime, cancellationToken))
        {
            throw new SsoSignInException("replayed", "This sign-in's state was already redeemed once.");
        }

        if (query["error"].ToString() is { Length: > 0 } error)
        {
            throw new SsoSignInException("provider-refused", $"The provider answered error '{ErrorCode(error)}'.");
        }

        if (query["code"].ToString() is not { Length: > 0 } code)
        {
            throw new SsoSignInException("provider-refused", "The provider sent the browser back without an authorization code.");
        }

        var settings = await store.GetAsync(correlation.TenantId, cancellationToken) is { Enabled: true } enabled
            ? enabled
            : throw new SsoSignInException("sso-disabled", "The tenant's SSO was turned off or removed during the sign-in.");
        var configuration = await provider.ConfigurationAsync(settings.Issuer, cancellationToken);
        var idToken = await provider.RedeemCodeAsync(
            configuration, settings.ClientId, RevealSecret(settings), code, correlation.CodeVerifier, correlation.RedirectUri, cancellationToken);
        var identity = await provider.ValidateIdTokenAsync(settings.Issuer, settings.ClientId, idToken, correlation.Nonce, cancellationToken);

        var email = identity.Email is { } claimed && MemberEndpoints.EmailError(claimed) is null
            ? UserDirectory.NormalizeEmail(claimed)
            : throw new SsoSignInException("email-missing", $"The id_token of subject '{identity.Subject}' carries no usable email claim.");
        attempt.Email = email;
        if (identity.EmailVerified == false)
        {
            throw new SsoSignInException("email-not-verified", $"The provider says {email} is not verified.");
        }

        if (!settings.AllowsDomain(email[(email.LastIndexOf('@') + 1)..]))
        {
            throw new SsoSignInException("domain-not-allowed", $"{email} is not in the tenant's allowed email domains ({string.Join(", ", settings.AllowedEmailDomains)}).");
        }

        await ProvisionAsync(settings, email, identity.Name, attempt, cancellationToken);
        return settings.TenantId;
    }

    /// <summary>
    /// The person, created on first sight, and a member of the tenant at its default role if not one yet (a member keeps
    /// their role). The tenant's provider vouches for people only within the tenant: an account that also reaches other
    /// tenants or holds a platform role is refused, so an organization's provider cannot sign in as someone with access elsewhere.
    /// </summary>
    private async Task ProvisionAsync(SsoSettings settings, string email, string? name, Attempt attempt, CancellationToken cancellationToken)
    {
        var person = await users.FindByEmailAsync(email, cancellationToken);
        if (person is not null)
        {
            var elsewhere = (await users.MembershipsAsync(person.Id, cancellationToken)).Where(m => m.TenantId != settings.TenantId).Select(m => m.TenantId).ToList();
            if (person.PlatformRole is not null || elsewhere.Count > 0)
            {
                throw new SsoSignInException(
                    "account-beyond-tenant",
                    $"{email} also holds {(person.PlatformRole is null ? $"memberships in {elsewhere.Count} other tenant(s)" : $"platform role {person.PlatformRole}")}; SSO of one tenant cannot vouch for it.");
            }
        }

        person ??= await users.EnsureUserAsync(email, name, cancellationToken);
        attempt.Person(person);
        if (await users.FindMemberAsync(settings.TenantId, person.Id, cancellationToken) is { } member)
        {
            attempt.Details = $"{email} via {settings.Issuer}, member as {member.Role}";
            return;
        }

        try
        {
            await users.AddMemberAsync(settings.TenantId, person, settings.DefaultRole, cancellationToken);
            attempt.Details = $"{email} via {settings.Issuer}, joined as {settings.DefaultRole} (just in time)";
        }
        catch (ControlPlaneException raced) when (raced.Type == "already-a-member")
        {
            attempt.Details = $"{email} via {settings.Issuer}, member already";
        }
    }

    private string RevealSecret(SsoSettings settings)
    {
        try
        {
            return store.RevealClientSecret(settings);
        }
        catch (CryptographicException unreadable)
        {
            throw new SsoSignInException("secret-unreadable", "The stored client secret cannot be decrypted with this server's data-protection keys.", unreadable);
        }
    }

    /// <summary>The provider's error code as logged: RFC 6749 codes are short ASCII words; anything else is not repeated.</summary>
    private static string ErrorCode(string error) =>
        error.Length <= 64 && error.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.') ? error : "(unrecognized)";

    /// <summary>What is known of a sign-in as it proceeds, for its audit record.</summary>
    private sealed class Attempt(string? tenantId)
    {
        public string? TenantId { get; } = tenantId;
        public string? Email { get; set; }
        public string? UserId { get; private set; }
        public string Actor { get; private set; } = "anonymous";
        public string? Details { get; set; }

        public void Person(User user)
        {
            UserId = user.Id;
            Actor = Principals.Create(Principals.UserKind, user.Id, user.Email, platformRole: null, [], "sso").Actor();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "SSO sign-in to tenant {TenantId} succeeded for user {UserId}")]
    private partial void LogSignedIn(string tenantId, string userId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "SSO sign-in to tenant {TenantId} refused ({Reason}): {Detail}")]
    private partial void LogRefused(Exception? cause, string? tenantId, string reason, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "SSO sign-in to tenant {TenantId} could not start ({Reason}): {Detail}")]
    private partial void LogStartFailed(Exception? cause, string tenantId, string reason, string detail);

    [LoggerMessage(Level = LogLevel.Error, Message = "SSO sign-in to tenant {TenantId} failed unexpectedly")]
    private partial void LogFailed(Exception failure, string? tenantId);
}
