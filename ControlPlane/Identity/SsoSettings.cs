using System.Net;
using ControlPlane.Api;
using ControlPlane.Security;

namespace ControlPlane.Identity;

/// <summary>
/// A tenant's OpenID Connect SSO, as stored: the identity provider (<see cref="Issuer"/>) and this control plane's client
/// registration there, the email domains whose people sign in through it, and the role a person gets when their first
/// SSO sign-in makes them a member. <see cref="ProtectedClientSecret"/> is the client secret encrypted with data
/// protection; only <see cref="SsoSettingsStore"/> turns it back.
/// </summary>
public sealed record SsoSettings(
    string TenantId,
    string Issuer,
    string ClientId,
    string ProtectedClientSecret,
    IReadOnlyList<string> AllowedEmailDomains,
    string DefaultRole,
    bool Enabled,
    DateTimeOffset UpdatedAt)
{
    public bool AllowsDomain(string domain) => AllowedEmailDomains.Contains(domain, StringComparer.Ordinal);

    /// <summary>Everything but the secret; for the audit log.</summary>
    public string Describe() =>
        $"issuer {Issuer}, client {ClientId}, domains {string.Join(", ", AllowedEmailDomains)}, default role {DefaultRole}, {(Enabled ? "enabled" : "disabled")}";
}

/// <summary>
/// <c>PUT /api/v1/tenants/{tenantId}/sso</c>: the whole configuration. <see cref="ClientSecret"/> is write-only; left out,
/// the stored one is kept (so an owner can change a domain without handling the secret again).
/// </summary>
public sealed record PutSsoSettingsRequest(
    string? Issuer,
    string? ClientId,
    string? ClientSecret,
    IReadOnlyList<string>? AllowedEmailDomains,
    string? DefaultRole,
    bool? Enabled);

/// <summary>What the API shows: never the secret, only whether one is set; and the redirect URI to register at the provider.</summary>
public sealed record SsoSettingsView(
    string Issuer,
    string ClientId,
    bool ClientSecretSet,
    IReadOnlyList<string> AllowedEmailDomains,
    string DefaultRole,
    bool Enabled,
    string RedirectUri,
    DateTimeOffset UpdatedAt)
{
    public static SsoSettingsView Of(SsoSettings settings, string redirectUri) => new(
        settings.Issuer,
        settings.ClientId,
        ClientSecretSet: settings.ProtectedClientSecret.Length > 0,
        settings.AllowedEmailDomains,
        settings.DefaultRole,
        settings.Enabled,
        redirectUri,
        settings.UpdatedAt);
}

/// <summary>A validated <see cref="PutSsoSettingsRequest"/>; <see cref="ClientSecret"/> is null when the stored one is kept.</summary>
public sealed record SsoSettingsChange(
    string Issuer, string ClientId, string? ClientSecret, IReadOnlyList<string> AllowedEmailDomains, Role DefaultRole, bool Enabled)
{
    public const int MaxDomains = 50;

    /// <summary>Checks every field and names each bad one; <paramref name="hasStoredSecret"/> says whether a secret may be left out.</summary>
    public static SsoSettingsChange Validate(PutSsoSettingsRequest request, bool hasStoredSecret)
    {
        var errors = new Dictionary<string, string[]>();
        if (IssuerError(request.Issuer) is { } issuerError)
        {
            errors["issuer"] = [issuerError];
        }

        if (string.IsNullOrWhiteSpace(request.ClientId) || request.ClientId.Length > 200 || request.ClientId.Any(char.IsControl))
        {
            errors["clientId"] = ["clientId is required: the client id this control plane is registered under at the identity provider (at most 200 characters)."];
        }

        if (request.ClientSecret is null ? !hasStoredSecret : request.ClientSecret.Length is 0 or > 500 || request.ClientSecret.Any(char.IsControl))
        {
            errors["clientSecret"] = [hasStoredSecret
                ? "clientSecret must be 1 to 500 characters, or left out to keep the stored one."
                : "clientSecret is required: the client secret the identity provider issued (1 to 500 characters)."];
        }

        var domains = (request.AllowedEmailDomains ?? []).Select(NormalizeDomain).Distinct(StringComparer.Ordinal).ToList();
        if (domains.Count == 0 || domains.Count > MaxDomains)
        {
            errors["allowedEmailDomains"] = [$"allowedEmailDomains must list 1 to {MaxDomains} email domains, such as [\"example.com\"]."];
        }
        else if (domains.Where(domain => !IsDnsName(domain)).ToList() is { Count: > 0 } bad)
        {
            errors["allowedEmailDomains"] = [$"Not a DNS name: {string.Join(", ", bad.Select(domain => $"'{domain}'"))}. Give domains such as example.com (no '@', no scheme)."];
        }

        var role = Roles.Find(request.DefaultRole, PermissionScope.Tenant);
        var grantable = Roles.TenantRoleNames.Where(name => name != Roles.Owner);
        if (role is null || role.Name == Roles.Owner)
        {
            errors["defaultRole"] = [$"defaultRole must be one of {string.Join(", ", grantable)} (it is '{request.DefaultRole}'); SSO never makes an owner."];
        }

        if (request.Enabled is null)
        {
            errors["enabled"] = ["enabled is required: true lets people sign in through this provider, false keeps the settings but turns SSO off."];
        }

        RequestValidationException.ThrowIfAny(errors);
        return new SsoSettingsChange(request.Issuer!.Trim(), request.ClientId!.Trim(), request.ClientSecret, domains, role!, request.Enabled!.Value);
    }

    public static string? IssuerError(string? issuer)
    {
        const string Hint = "issuer must be the identity provider's issuer URL, such as https://login.example.com/ or https://login.example.com/tenant-id, "
            + "using https (http is allowed only for a loopback address such as http://127.0.0.1:8080/, for local testing), with no query or fragment";
        if (string.IsNullOrWhiteSpace(issuer) || issuer.Length > 500 || !Uri.TryCreate(issuer.Trim(), UriKind.Absolute, out var uri))
        {
            return $"{Hint}.";
        }

        var allowedScheme = uri.Scheme == Uri.UriSchemeHttps || (uri.Scheme == Uri.UriSchemeHttp && IsLoopback(uri));
        return allowedScheme && uri.Query.Length == 0 && uri.Fragment.Length == 0 && uri.UserInfo.Length == 0
            ? null
            : $"{Hint} (it is '{issuer}').";
    }

    public static bool IsLoopback(Uri uri) =>
        uri.IsLoopback || (IPAddress.TryParse(uri.DnsSafeHost, out var address) && IPAddress.IsLoopback(address));

    public static string NormalizeDomain(string? domain) => (domain ?? "").Trim().TrimEnd('.').ToLowerInvariant();

    /// <summary>An ASCII DNS name with at least two labels (internationalized names in their xn-- form).</summary>
    public static bool IsDnsName(string domain)
    {
        var labels = domain.Split('.');
        return domain.Length <= 253
            && labels.Length >= 2
            && labels.All(label => label.Length is > 0 and <= 63
                && label[0] != '-' && label[^1] != '-'
                && label.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-'))
            && !labels[^1].All(char.IsAsciiDigit);
    }
}
