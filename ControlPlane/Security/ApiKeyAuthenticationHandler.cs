using System.Security.Claims;
using System.Text.Encodings.Web;
using ControlPlane.Api;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace ControlPlane.Security;

/// <summary><c>Authorization: Bearer &lt;api key&gt;</c>. Failures answer problem+json, like every other error.</summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    ApiKeyStore keys,
    AuthenticationFailures failures,
    IProblemDetailsService problems) : AuthenticationHandler<AuthenticationSchemeOptions>(options, loggerFactory, encoder)
{
    public const string SchemeName = "ApiKey";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? header = Request.Headers.Authorization;
        if (string.IsNullOrEmpty(header))
        {
            return AuthenticateResult.NoResult();
        }

        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            failures.Record(RequestRateLimits.Address(Context), "api-key");
            return AuthenticateResult.Fail("The Authorization header must use the Bearer scheme.");
        }

        var key = await keys.FindAsync(header["Bearer ".Length..].Trim(), Context.RequestAborted);
        if (key is null)
        {
            failures.Record(RequestRateLimits.Address(Context), "api-key");
            return AuthenticateResult.Fail("The API key is not valid, has expired or was revoked.");
        }

        var principal = Principals.Create(
            Principals.ApiKeyKind,
            key.Id,
            key.Name,
            key.TenantId is null ? key.Role : null,
            key.TenantId is null ? [] : [(key.TenantId, key.Role)],
            SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = "Bearer";
        var failure = (await HandleAuthenticateOnceSafeAsync()).Failure?.Message;
        await problems.WriteAsync(ProblemResponses.Context(
            Context,
            StatusCodes.Status401Unauthorized,
            "unauthenticated",
            "Authentication required",
            failure ?? "Send an API key as 'Authorization: Bearer <key>'."));
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status403Forbidden;
        await problems.WriteAsync(ProblemResponses.Context(
            Context,
            StatusCodes.Status403Forbidden,
            "forbidden",
            "Not allowed",
            "This API key is not allowed to do this."));
    }
}
