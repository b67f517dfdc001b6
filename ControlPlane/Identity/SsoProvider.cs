using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace ControlPlane.Identity;

/// <summary>What the provider's id_token says about the person, once it is proven genuine.</summary>
public sealed record SsoIdentity(string Subject, string? Email, bool? EmailVerified, string? Name);

/// <summary>
/// Talks to tenants' OpenID Connect providers: discovery and signing keys (cached per issuer by
/// <see cref="ConfigurationManager{T}"/>, which refreshes them when a token names a key it has not seen), the
/// authorization-code exchange, and the id_token's validation with <see cref="JsonWebTokenHandler"/>.
/// <para>
/// Why not ASP.NET Core's OpenIdConnect handler: it is configured per authentication scheme at start-up, while each
/// tenant brings its own issuer, client and secret at run time; making it per-tenant means a scheme per tenant or
/// options rewritten per request. The protocol steps it would run are few and are all here, each checked explicitly.
/// </para>
/// </summary>
public sealed class SsoProvider(IHttpClientFactory httpClients)
{
    /// <summary>The named <see cref="HttpClient"/> for providers: bounded time-outs, retries for reads only.</summary>
    public const string HttpClientName = "sso-provider";

    private static readonly string[] s_signingAlgorithms =
    [
        SecurityAlgorithms.RsaSha256, SecurityAlgorithms.RsaSha384, SecurityAlgorithms.RsaSha512,
        SecurityAlgorithms.RsaSsaPssSha256, SecurityAlgorithms.RsaSsaPssSha384, SecurityAlgorithms.RsaSsaPssSha512,
        SecurityAlgorithms.EcdsaSha256, SecurityAlgorithms.EcdsaSha384, SecurityAlgorithms.EcdsaSha512,
    ];

    private readonly ConcurrentDictionary<string, ConfigurationManager<OpenIdConnectConfiguration>> _configurations = new(StringComparer.Ordinal);
    private readonly JsonWebTokenHandler _tokens = new();

    public static string DiscoveryAddress(string issuer) => $"{issuer.TrimEnd('/')}/.well-known/openid-configuration";

    /// <summary>
    /// Reads the issuer's discovery document now (not from the cache) and checks it: reachable, naming this very issuer,
    /// with the endpoints the code flow needs. What a PUT of the settings checks before storing them.
    /// </summary>
    public async Task<OpenIdConnectConfiguration> DiscoverAsync(string issuer, CancellationToken cancellationToken)
    {
        OpenIdConnectConfiguration configuration;
        try
        {
            configuration = await OpenIdConnectConfigurationRetriever.GetAsync(DiscoveryAddress(issuer), Documents(issuer), cancellationToken);
        }
        catch (Exception failure) when (!cancellationToken.IsCancellationRequested)
        {
            // The retriever wraps transport failures (refused, timed out, not JSON) in exceptions of several kinds; all mean one thing here.
            throw new SsoSignInException("provider-unreachable", $"The discovery document at {DiscoveryAddress(issuer)} could not be read.", failure);
        }

        if (!string.Equals(configuration.Issuer, issuer, StringComparison.Ordinal))
        {
            throw new SsoSignInException(
                "issuer-mismatch", $"The discovery document at {DiscoveryAddress(issuer)} names issuer '{configuration.Issuer}', not '{issuer}'. Use exactly the issuer it names.");
        }

        if (string.IsNullOrEmpty(configuration.AuthorizationEndpoint) || string.IsNullOrEmpty(configuration.TokenEndpoint) || string.IsNullOrEmpty(configuration.JwksUri))
        {
            throw new SsoSignInException(
                "provider-incomplete", $"The discovery document at {DiscoveryAddress(issuer)} lacks an authorization_endpoint, token_endpoint or jwks_uri, which the code flow needs.");
        }

        Forget(issuer);
        return configuration;
    }

    /// <summary>The issuer's configuration with its signing keys, cached; <paramref name="refresh"/> asks for a fresh copy.</summary>
    public async Task<OpenIdConnectConfiguration> ConfigurationAsync(string issuer, CancellationToken cancellationToken, bool refresh = false)
    {
        var manager = _configurations.GetOrAdd(
            issuer,
            _ => new ConfigurationManager<OpenIdConnectConfiguration>(DiscoveryAddress(issuer), new OpenIdConnectConfigurationRetriever(), Documents(issuer)));
        if (refresh)
        {
            manager.RequestRefresh();
        }

        try
        {
            var configuration = await manager.GetConfigurationAsync(cancellationToken);
            return string.Equals(configuration.Issuer, issuer, StringComparison.Ordinal)
                ? configuration
                : throw new SsoSignInException("issuer-mismatch", $"The provider's discovery document now names issuer '{configuration.Issuer}', not '{issuer}'.");
        }
        catch (InvalidOperationException failure)
        {
            // ConfigurationManager wraps every retrieval failure in this; its message names the address, never a secret.
            throw new SsoSignInException("provider-unreachable", $"The configuration of issuer {issuer} could not be read.", failure);
        }
    }

    /// <summary>Trades the authorization code for tokens at the token endpoint (PKCE verifier and client secret); answers the id_token.</summary>
    public async Task<string> RedeemCodeAsync(
        OpenIdConnectConfiguration configuration, string clientId, string clientSecret, string code, string codeVerifier, string redirectUri, CancellationToken cancellationToken)
    {
        var form = new Dictionary<string, string>
        {
            ["grant_type"] = "authorization_code",
            ["code"] = code,
            ["redirect_uri"] = redirectUri,
            ["code_verifier"] = codeVerifier,
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, configuration.TokenEndpoint);
        var methods = configuration.TokenEndpointAuthMethodsSupported;
        if (methods.Count == 0 || methods.Contains("client_secret_basic"))
        {
            // RFC 6749 §2.3.1: both parts form-encoded before Basic's base64.
            var credentials = $"{Uri.EscapeDataString(clientId)}:{Uri.EscapeDataString(clientSecret)}";
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(credentials)));
        }
        else
        {
            form["client_id"] = clientId;
            form["client_secret"] = clientSecret;
        }

        request.Content = new FormUrlEncodedContent(form);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        HttpResponseMessage response;
        try
        {
            response = await httpClients.CreateClient(HttpClientName).SendAsync(request, cancellationToken);
        }
        catch (Exception failure) when (failure is HttpRequestException or TaskCanceledException or TimeoutException or Polly.Timeout.TimeoutRejectedException)
        {
            throw new SsoSignInException("provider-unreachable", "The provider's token endpoint did not answer.", failure);
        }

        using (response)
        {
            JsonElement body;
            try
            {
                body = JsonElement.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
            }
            catch (JsonException)
            {
                throw new SsoSignInException("token-exchange-failed", $"The token endpoint answered {(int)response.StatusCode} without a JSON body.");
            }

            if (!response.IsSuccessStatusCode || body.ValueKind != JsonValueKind.Object)
            {
                // The error code is the provider's word for what went wrong (invalid_grant, invalid_client); no token is in it.
                var error = body.ValueKind == JsonValueKind.Object && body.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String ? e.GetString() : null;
                throw new SsoSignInException("token-exchange-failed", $"The token endpoint refused the code: {(int)response.StatusCode} {error ?? "(no error code)"}.");
            }

            return body.TryGetProperty("id_token", out var idToken) && idToken.ValueKind == JsonValueKind.String && idToken.GetString() is { Length: > 0 } token
                ? token
                : throw new SsoSignInException("token-exchange-failed", "The token endpoint answered no id_token (was the openid scope granted?).");
        }
    }

    /// <summary>
    /// Proves the id_token genuine: signed by one of the issuer's keys (refreshed once when it names an unknown key), by
    /// this issuer, for this client, within its lifetime, and carrying the nonce this sign-in sent.
    /// </summary>
    public async Task<SsoIdentity> ValidateIdTokenAsync(string issuer, string clientId, string idToken, string nonce, CancellationToken cancellationToken)
    {
        var result = await ValidateAsync(await ConfigurationAsync(issuer, cancellationToken), issuer, clientId, idToken);
        if (!result.IsValid && result.Exception is SecurityTokenSignatureKeyNotFoundException)
        {
            result = await ValidateAsync(await ConfigurationAsync(issuer, cancellationToken, refresh: true), issuer, clientId, idToken);
        }

        if (!result.IsValid || result.SecurityToken is not JsonWebToken token)
        {
            // The exception's type says what failed; its message is not logged, so no token part can leak through it.
            throw new SsoSignInException("invalid-id-token", $"The id_token failed validation ({result.Exception?.GetType().Name ?? "unreadable"}).");
        }

        if (!token.TryGetPayloadValue<string>(JwtRegisteredClaimNames.Nonce, out var tokenNonce)
            || !System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(tokenNonce), System.Text.Encoding.UTF8.GetBytes(nonce)))
        {
            throw new SsoSignInException("invalid-id-token", "The id_token does not carry the nonce this sign-in sent.");
        }

        // OpenID Connect Core §3.1.3.7: with several audiences, the authorized party must be this client.
        if (token.Audiences.Count() > 1 && (!token.TryGetPayloadValue<string>("azp", out var azp) || azp != clientId))
        {
            throw new SsoSignInException("invalid-id-token", "The id_token is for several audiences and does not name this client as its authorized party.");
        }

        if (string.IsNullOrEmpty(token.Subject))
        {
            throw new SsoSignInException("invalid-id-token", "The id_token has no subject.");
        }

        return new SsoIdentity(token.Subject, Claim(token, "email"), EmailVerified(token), Claim(token, "name"));
    }

    private Task<TokenValidationResult> ValidateAsync(OpenIdConnectConfiguration configuration, string issuer, string clientId, string idToken) =>
        _tokens.ValidateTokenAsync(idToken, new TokenValidationParameters
        {
            ValidIssuer = issuer,
            ValidAudience = clientId,
            IssuerSigningKeys = configuration.SigningKeys,
            ValidAlgorithms = s_signingAlgorithms,
            ValidateIssuer = true,
            ValidateAudience = true,
            ValidateLifetime = true,
            ValidateIssuerSigningKey = true,
            RequireSignedTokens = true,
            RequireExpirationTime = true,
            ClockSkew = TimeSpan.FromMinutes(2),
        });

    private static string? Claim(JsonWebToken token, string name) =>
        token.TryGetPayloadValue<string>(name, out var value) && !string.IsNullOrWhiteSpace(value) ? value : null;

    /// <summary>The <c>email_verified</c> claim: a JSON boolean by the spec, a string at some providers; null when absent.</summary>
    private static bool? EmailVerified(JsonWebToken token) =>
        token.TryGetPayloadValue<bool>("email_verified", out var verified) ? verified
        : token.TryGetPayloadValue<string>("email_verified", out var text) && bool.TryParse(text, out var parsed) ? parsed
        : token.TryGetPayloadValue<object>("email_verified", out _) ? false
        : null;

    private HttpDocumentRetriever Documents(string issuer) =>
        // The retriever keeps its client for the life of the cached configuration; the factory's handler still bounds each call.
        new(httpClients.CreateClient(HttpClientName)) { RequireHttps = !SsoSettingsChange.IsLoopback(new Uri(issuer)) };

    private void Forget(string issuer) => _configurations.TryRemove(issuer, out _);
}
