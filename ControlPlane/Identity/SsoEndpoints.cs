using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Errors;
using ControlPlane.Security;
using Microsoft.Extensions.Http.Resilience;

namespace ControlPlane.Identity;

/// <summary>
/// A tenant's OpenID Connect SSO: its settings (<c>/api/v1/tenants/{tenantId}/sso</c>, set by an owner) and the
/// portal's sign-in through it (<c>/portal/sso/start</c>, <c>/portal/sso/callback</c>).
/// </summary>
public static class SsoEndpoints
{
    public static IServiceCollection AddSso(this IServiceCollection services)
    {
        services.AddSingleton<SsoSettingsStore>();
        services.AddSingleton<SsoProvider>();
        services.AddScoped<SsoSignIn>();
        services.AddHttpClient(SsoProvider.HttpClientName)
            .AddStandardResilienceHandler(resilience =>
            {
                // A person is waiting at the browser: a few seconds per try, a bounded total, and no retry of the code
                // exchange (a POST; an authorization code is good for one use).
                resilience.AttemptTimeout.Timeout = TimeSpan.FromSeconds(5);
                resilience.CircuitBreaker.SamplingDuration = TimeSpan.FromSeconds(10);
                resilience.Retry.MaxRetryAttempts = 2;
                resilience.Retry.Delay = TimeSpan.FromMilliseconds(200);
                resilience.Retry.DisableForUnsafeHttpMethods();
                resilience.TotalRequestTimeout.Timeout = TimeSpan.FromSeconds(15);
            })
            // One circuit breaker per provider: one tenant's failing provider must not stop every other tenant's sign-ins.
            .SelectPipelineByAuthority();
        return services;
    }

    public static IEndpointRouteBuilder MapSso(this IEndpointRouteBuilder app)
    {
        var settings = app.MapGroup("/api/v1/tenants/{tenantId}/sso").WithTags("Identity");
        settings.MapGet("", GetSettingsAsync).Requires(Permissions.SsoRead)
            .WithSummary("The tenant's OpenID Connect SSO settings (the client secret only as clientSecretSet)");
        settings.MapPut("", PutSettingsAsync).Requires(Permissions.SsoManage)
            .WithSummary("Set the tenant's SSO: issuer, client id and secret (write-only), allowed email domains, default role, enabled; the issuer's discovery document is checked");
        settings.MapDelete("", DeleteSettingsAsync).Requires(Permissions.SsoManage)
            .WithSummary("Remove the tenant's SSO and free its email domains");

        // The browser's way in: anonymous by nature, answered with redirects, not part of the REST API's description.
        var portal = app.MapGroup("/portal/sso").AllowAnonymous().ExcludeFromDescription();
        portal.MapGet("/start", async (string? email, HttpContext context, SsoSignIn signIn) => Results.Redirect(await signIn.StartAsync(context, email)));
        portal.MapGet("/callback", async (HttpContext context, SsoSignIn signIn) => Results.Redirect(await signIn.CompleteAsync(context)));
        return app;
    }

    private static async Task<SsoSettingsView> GetSettingsAsync(string tenantId, HttpContext context, IGrainFactory grains, SsoSettingsStore store)
    {
        await grains.RequireTenantAsync(context.User, tenantId);
        var settings = await store.GetAsync(tenantId, context.RequestAborted) ?? throw NotConfigured(tenantId);
        return SsoSettingsView.Of(settings, SsoSignIn.RedirectUri(context.Request));
    }

    /// <summary>Validates and saves a tenant's SSO after checking its issuer, audited (the API and the portal both call it).</summary>
    public static async Task<SsoSettingsView> PutSettingsAsync(
        string tenantId, PutSsoSettingsRequest request, HttpContext context, IGrainFactory grains, SsoSettingsStore store, SsoProvider provider, AuditLog audit)
    {
        await grains.RequireTenantAsync(context.User, tenantId);
        var stored = await store.GetAsync(tenantId, context.RequestAborted);
        var change = SsoSettingsChange.Validate(request, hasStoredSecret: stored is not null);
        context.User.DemandMayGrant(tenantId, change.DefaultRole);
        var saved = await audit.AuditedAsync(
            context,
            tenantId,
            "sso.settings.put",
            target: tenantId,
            async () =>
            {
                await CheckIssuerAsync(provider, change.Issuer, context.RequestAborted);
                return await store.SaveAsync(tenantId, change, CancellationToken.None);
            },
            result => new AuditOutcome(Details: $"{result.Describe()}; client secret {(change.ClientSecret is null ? "kept" : "replaced")}"),
            outcome: "succeeded");
        return SsoSettingsView.Of(saved, SsoSignIn.RedirectUri(context.Request));
    }

    private static async Task<IResult> DeleteSettingsAsync(string tenantId, HttpContext context, IGrainFactory grains, SsoSettingsStore store, AuditLog audit)
    {
        await grains.RequireTenantAsync(context.User, tenantId);
        await audit.AuditedAsync(
            context,
            tenantId,
            "sso.settings.delete",
            target: tenantId,
            async () => await store.DeleteAsync(tenantId, CancellationToken.None) ? true : throw NotConfigured(tenantId),
            _ => new AuditOutcome(),
            outcome: "succeeded");
        return TypedResults.NoContent();
    }

    /// <summary>The issuer's discovery document, read once now: settings that cannot work are refused before they are stored.</summary>
    private static async Task CheckIssuerAsync(SsoProvider provider, string issuer, CancellationToken cancellationToken)
    {
        try
        {
            await provider.DiscoverAsync(issuer, cancellationToken);
        }
        catch (SsoSignInException refused)
        {
            var (type, title) = refused.Reason switch
            {
                "provider-unreachable" => ("sso-issuer-unreachable", "The identity provider could not be reached"),
                "issuer-mismatch" => ("sso-issuer-mismatch", "The identity provider names another issuer"),
                _ => ("sso-issuer-incomplete", "The identity provider's discovery document is incomplete"),
            };
            throw new ControlPlaneException(
                ProblemKind.Unprocessable,
                type,
                title,
                $"{refused.Message} Nothing was changed.",
                new Dictionary<string, string> { ["discoveryDocument"] = SsoProvider.DiscoveryAddress(issuer) });
        }
    }

    private static ControlPlaneException NotConfigured(string tenantId) =>
        new(ProblemKind.NotFound, "sso-not-configured", "SSO is not configured", $"Tenant '{tenantId}' has no SSO settings. PUT them to set SSO up.");
}
