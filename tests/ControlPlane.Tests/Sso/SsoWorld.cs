using System.Net;
using System.Security.Claims;
using System.Text.Json.Nodes;
using ControlPlane.Auditing;
using ControlPlane.Identity;
using ControlPlane.Tests.Support;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace ControlPlane.Tests.Sso;

[CollectionDefinition(Name)]
public sealed class SsoCollection : ICollectionFixture<SsoWorld>
{
    public const string Name = "sso";
}

/// <summary>
/// One control plane (in memory, addressed as https://localhost as a browser would see the portal) and one identity
/// provider (OpenIddict on a loopback port) registered for it. Tests each make their own tenant and email domain.
/// </summary>
public sealed class SsoWorld : IAsyncLifetime
{
    public static readonly Uri PortalBase = new("https://localhost");

    public ControlPlaneFactory ControlPlane { get; } = new();

    public TestIdentityProvider Provider { get; private set; } = null!;

    public ControlPlaneApi Admin { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Provider = await TestIdentityProvider.StartAsync(new Uri(PortalBase, SsoSignIn.CallbackPath).ToString());
        ControlPlane.ClientOptions.BaseAddress = PortalBase;
        Admin = ControlPlane.CreateAdminApi();
    }

    public async Task DisposeAsync()
    {
        await ControlPlane.DisposeAsync();
        await Provider.DisposeAsync();
    }

    public Browser NewBrowser() => new(ControlPlane.Server.CreateHandler(), PortalBase);

    /// <summary>A new tenant and an email domain of its own, e.g. <c>t3f9a1c2.test</c>.</summary>
    public async Task<(string TenantId, string Domain)> NewTenantAsync()
    {
        var tenant = await Admin.CreateTenantAsync($"Sso {Guid.NewGuid():N}"[..20]);
        return ((string)tenant["id"]!, $"t{Guid.NewGuid():N}"[..9] + ".test");
    }

    public object Settings(string domain, string defaultRole = "viewer", string? clientSecret = "default", bool enabled = true, string? issuer = null) => new
    {
        issuer = issuer ?? Provider.Issuer,
        clientId = TestIdentityProvider.ClientId,
        clientSecret = clientSecret == "default" ? Provider.ClientSecret : clientSecret,
        allowedEmailDomains = new[] { domain },
        defaultRole,
        enabled,
    };

    public Task<HttpResponseMessage> PutSettingsAsync(string tenantId, object settings) =>
        Admin.SendAsync(HttpMethod.Put, $"/api/v1/tenants/{tenantId}/sso", settings);

    /// <summary>A tenant whose SSO, through the test provider, admits its own domain at <paramref name="defaultRole"/>.</summary>
    public async Task<(string TenantId, string Domain)> TenantWithSsoAsync(string defaultRole = "viewer")
    {
        var (tenantId, domain) = await NewTenantAsync();
        using var response = await PutSettingsAsync(tenantId, Settings(domain, defaultRole));
        await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.OK);
        return (tenantId, domain);
    }

    public async Task<List<JsonNode>> MembersAsync(string tenantId) => await Admin.ListAllAsync($"/api/v1/tenants/{tenantId}/members");

    /// <summary>Who the browser's portal cookie signs in, read as the control plane reads it; null without a cookie.</summary>
    public ClaimsPrincipal? PortalPrincipal(Browser browser)
    {
        if (browser.Cookie(PortalSession.CookieName) is not { } value)
        {
            return null;
        }

        var options = ControlPlane.Services.GetRequiredService<IOptionsMonitor<CookieAuthenticationOptions>>().Get(PortalSession.Scheme);
        return options.TicketDataFormat.Unprotect(value)?.Principal;
    }

    public async Task<IReadOnlyList<AuditRecord>> AuditAsync(string? tenantId, string action) =>
        [.. (await ControlPlane.Services.GetRequiredService<AuditLog>().ReadAsync(tenantId, 1000)).Where(record => record.Action == action)];

    public Task<User?> FindUserAsync(string email) => ControlPlane.Services.GetRequiredService<UserDirectory>().FindByEmailAsync(email);
}
