using System.Collections.Concurrent;
using System.Security.Claims;
using ControlPlane.Tests.Support;
using Microsoft.AspNetCore;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Abstractions;
using OpenIddict.Server.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;
using static OpenIddict.Server.OpenIddictServerEvents;

namespace ControlPlane.Tests.Sso;

/// <summary>
/// A real OpenID Connect provider in the test process: OpenIddict's server on a Kestrel loopback port, with discovery,
/// JWKS (an ephemeral RSA signing key), an authorization endpoint and a token endpoint for the authorization code flow
/// with PKCE. It runs in degraded mode (no store), so the client checks a store would make are made here: one client id,
/// its secret, its one redirect URI. Whoever asks to sign in is signed in as <see cref="Email"/> at once, as if they had
/// already logged in at the provider; tests choose that person, and may alter the id_token it hands out.
/// </summary>
public sealed class TestIdentityProvider : IAsyncDisposable
{
    public const string ClientId = "controlplane-portal";

    private readonly WebApplication _app;

    private TestIdentityProvider(WebApplication app, string issuer, string clientSecret, string redirectUri)
    {
        _app = app;
        Issuer = issuer;
        ClientSecret = clientSecret;
        RedirectUri = redirectUri;
    }

    /// <summary>The issuer, as OpenIddict writes it in discovery and tokens (with its trailing slash).</summary>
    public string Issuer { get; }

    public string ClientSecret { get; }

    public string RedirectUri { get; }

    /// <summary>Who is signed in at the provider: the email its id_tokens carry.</summary>
    public string Email { get; set; } = "ada@example.test";

    /// <summary>The <c>email_verified</c> claim; null leaves it out.</summary>
    public bool? EmailVerified { get; set; } = true;

    /// <summary>Changes each id_token on its way out of the token endpoint (a forgery in transit); null hands them out as issued.</summary>
    public Func<string, string>? AlterIdToken { get; set; }

    /// <summary>Every id_token handed out, as sent, and every token request's verdict, for tests that prove what happened.</summary>
    public ConcurrentQueue<string> IssuedIdTokens { get; } = new();

    public ConcurrentQueue<string> AuthorizationRequests { get; } = new();

    public static async Task<TestIdentityProvider> StartAsync(string redirectUri)
    {
        var port = Ports.Free();
        var issuer = $"http://127.0.0.1:{port}/";
        var clientSecret = $"idp-secret-{Guid.NewGuid():N}";
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel().UseUrls(issuer);
        builder.Logging.ClearProviders();
        TestIdentityProvider? provider = null;
        builder.Services.AddAuthentication();
        builder.Services.AddOpenIddict().AddServer(server =>
        {
            server.SetIssuer(new Uri(issuer));
            server.SetAuthorizationEndpointUris("connect/authorize").SetTokenEndpointUris("connect/token");
            server.AllowAuthorizationCodeFlow().RequireProofKeyForCodeExchange();
            server.RegisterScopes(Scopes.Email, Scopes.Profile);
            server.AddEphemeralEncryptionKey().AddEphemeralSigningKey();
            server.EnableDegradedMode();
            server.UseAspNetCore().EnableAuthorizationEndpointPassthrough().DisableTransportSecurityRequirement();
            server.AddEventHandler<ValidateAuthorizationRequestContext>(handler => handler.UseInlineHandler(context =>
            {
                provider!.AuthorizationRequests.Enqueue(context.Request.Scope ?? "");
                if (context.ClientId != ClientId || context.RedirectUri != redirectUri)
                {
                    context.Reject(OpenIddictConstants.Errors.InvalidClient, "Unknown client or redirect_uri.");
                }

                return default;
            }));
            server.AddEventHandler<ValidateTokenRequestContext>(handler => handler.UseInlineHandler(context =>
            {
                if (context.Request.ClientId != ClientId || context.Request.ClientSecret != clientSecret)
                {
                    context.Reject(OpenIddictConstants.Errors.InvalidClient, "Client authentication failed.");
                }

                return default;
            }));
            server.AddEventHandler<ApplyTokenResponseContext>(handler => handler.UseInlineHandler(context =>
            {
                if (context.Response.IdToken is { } idToken)
                {
                    context.Response.IdToken = provider!.AlterIdToken?.Invoke(idToken) ?? idToken;
                    provider.IssuedIdTokens.Enqueue(context.Response.IdToken!);
                }

                return default;
            }));
        });

        var app = builder.Build();
        app.UseAuthentication();
        app.MapGet("/connect/authorize", (HttpContext context) => provider!.SignIn(context));
        provider = new TestIdentityProvider(app, issuer, clientSecret, redirectUri);
        await app.StartAsync();

        // Its first answers are compiled on demand, which on a loaded machine can outlast the control plane's 5 s per
        // try: the provider has answered once before a test asks the control plane to read it.
        using var warmUp = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        using (await warmUp.GetAsync(new Uri(new Uri(issuer), ".well-known/openid-configuration")))
        {
        }

        return provider;
    }

    private IResult SignIn(HttpContext context)
    {
        var request = context.GetOpenIddictServerRequest() ?? throw new InvalidOperationException("Not an OpenID Connect request.");
        var identity = new ClaimsIdentity(TokenValidationParameters.DefaultAuthenticationType, Claims.Name, Claims.Role);
        identity.AddClaim(new Claim(Claims.Subject, $"subject-of-{Email}"));
        identity.AddClaim(new Claim(Claims.Email, Email));
        identity.AddClaim(new Claim(Claims.Name, Email.Split('@')[0]));
        if (EmailVerified is { } verified)
        {
            identity.AddClaim(new Claim(Claims.EmailVerified, verified ? "true" : "false", ClaimValueTypes.Boolean));
        }

        var principal = new ClaimsPrincipal(identity);
        principal.SetScopes(request.GetScopes());
        principal.SetDestinations(_ => [Destinations.IdentityToken]);
        return Results.SignIn(principal, properties: null, OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
