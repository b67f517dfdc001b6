using System.Net;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using ControlPlane.Identity;
using ControlPlane.Security;
using ControlPlane.Tests.Support;
using Microsoft.AspNetCore.WebUtilities;

namespace ControlPlane.Tests.Sso;

[Collection(SsoCollection.Name)]
public sealed class SsoSignInTests(SsoWorld world) : IDisposable
{
    private readonly Browser _browser = world.NewBrowser();

    [Fact]
    public async Task A_new_person_signs_in_end_to_end_and_becomes_a_member_at_the_default_role()
    {
        var (tenantId, domain) = await world.TenantWithSsoAsync(defaultRole: "member");
        world.Provider.Email = $"grace@{domain}";

        var landing = await _browser.FollowAsync($"/portal/sso/start?email=grace@{domain}");

        Assert.Equal($"/portal/tenants/{tenantId}", landing.PathAndQuery);
        // The browser really went to the provider, with PKCE, and came back to the callback.
        var authorize = Assert.Single(_browser.Visits, visit => visit.Url.AbsoluteUri.StartsWith(world.Provider.Issuer + "connect/authorize", StringComparison.Ordinal));
        var query = QueryHelpers.ParseQuery(authorize.Url.Query);
        Assert.Equal("S256", query["code_challenge_method"]);
        Assert.Equal(43, query["code_challenge"].ToString().Length);
        Assert.Equal(SsoWorld.PortalBase + "portal/sso/callback", query["redirect_uri"]);

        var person = await world.FindUserAsync($"grace@{domain}");
        Assert.NotNull(person);
        var principal = world.PortalPrincipal(_browser);
        Assert.NotNull(principal);
        Assert.Equal(person.Id, principal.Id());
        Assert.Equal($"grace@{domain}", principal.Identity!.Name);
        Assert.Equal("sso", principal.FindFirstValue(PortalSession.AuthenticationMethodClaim));
        Assert.Equal(Roles.Member, principal.TenantRole(tenantId)?.Name);

        var member = Assert.Single(await world.MembersAsync(tenantId), m => (string?)m["email"] == $"grace@{domain}");
        Assert.Equal("member", (string?)member["role"]);
        var audit = Assert.Single(await world.AuditAsync(tenantId, SsoSignIn.AuditAction));
        Assert.Equal("succeeded", audit.Outcome);
        Assert.Equal($"user:{person.Id} (grace@{domain})", audit.Actor);
        Assert.Contains("just in time", audit.Details, StringComparison.Ordinal);

        // The correlation cookie is gone, and nothing secret reached a log: not the id_token, nor the client secret.
        Assert.Null(_browser.Cookie(SsoCorrelation.CookieName, SsoCorrelation.CookiePath));
        var idToken = world.Provider.IssuedIdTokens.Last();
        var code = QueryHelpers.ParseQuery(_browser.Visits.Single(v => v.Url.AbsolutePath == SsoSignIn.CallbackPath).Url.Query)["code"].ToString();
        Assert.DoesNotContain(world.ControlPlane.Logs.Lines, line =>
            line.Contains(idToken, StringComparison.Ordinal) || line.Contains(code, StringComparison.Ordinal) || line.Contains(world.Provider.ClientSecret, StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_existing_member_keeps_their_role()
    {
        var (tenantId, domain) = await world.TenantWithSsoAsync(defaultRole: "viewer");
        using (var invited = await world.Admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/members", new { email = $"linus@{domain}", role = "admin" }))
        {
            await ControlPlaneApi.ExpectAsync(invited, HttpStatusCode.Created);
        }

        world.Provider.Email = $"linus@{domain}";
        var landing = await _browser.FollowAsync($"/portal/sso/start?email=linus@{domain}");

        Assert.Equal($"/portal/tenants/{tenantId}", landing.PathAndQuery);
        Assert.Equal(Roles.Admin, world.PortalPrincipal(_browser)?.TenantRole(tenantId)?.Name);
        var member = Assert.Single(await world.MembersAsync(tenantId), m => (string?)m["email"] == $"linus@{domain}");
        Assert.Equal("admin", (string?)member["role"]);
    }

    [Fact]
    public async Task A_person_from_a_domain_the_tenant_does_not_allow_is_refused_and_nobody_is_created()
    {
        var (tenantId, domain) = await world.TenantWithSsoAsync();
        var membersBefore = (await world.MembersAsync(tenantId)).Count;
        // The provider signs in someone of another domain than the one typed on the sign-in page.
        var outsider = $"mallory@elsewhere-{Guid.NewGuid():N}.test";
        world.Provider.Email = outsider;

        var landing = await _browser.FollowAsync($"/portal/sso/start?email=alice@{domain}");

        Assert.Equal("/portal/sign-in?error=domain-not-allowed", landing.PathAndQuery);
        Assert.NotEmpty(world.Provider.IssuedIdTokens);
        Assert.Null(world.PortalPrincipal(_browser));
        Assert.Null(await world.FindUserAsync(outsider));
        Assert.Equal(membersBefore, (await world.MembersAsync(tenantId)).Count);
        var audit = Assert.Single(await world.AuditAsync(tenantId, SsoSignIn.AuditAction));
        Assert.Equal("anonymous", audit.Actor);
        Assert.Equal("rejected:domain-not-allowed", audit.Outcome);
        Assert.Equal(outsider, audit.Target);
    }

    [Fact]
    public async Task An_email_whose_domain_no_tenant_claims_gets_the_same_answer_as_one_that_is_not_enabled()
    {
        var (_, domain) = await world.NewTenantAsync();
        var (disabledTenant, disabledDomain) = await world.NewTenantAsync();
        using (var response = await world.PutSettingsAsync(disabledTenant, world.Settings(disabledDomain, enabled: false)))
        {
            await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.OK);
        }

        var unknown = await _browser.GetAsync(new Uri(SsoWorld.PortalBase, $"/portal/sso/start?email=ada@{domain}"));
        var disabled = await _browser.GetAsync(new Uri(SsoWorld.PortalBase, $"/portal/sso/start?email=ada@{disabledDomain}"));

        Assert.Equal(HttpStatusCode.Redirect, unknown.Status);
        Assert.Equal("/portal/sign-in?sso=unavailable", unknown.Location!.PathAndQuery);
        Assert.Equal((unknown.Status, unknown.Location), (disabled.Status, disabled.Location));
        Assert.Null(_browser.Cookie(SsoCorrelation.CookieName, SsoCorrelation.CookiePath));
    }

    public static TheoryData<string> Forgeries => ["claim changed", "signed by another key"];

    [Theory]
    [MemberData(nameof(Forgeries))]
    public async Task A_tampered_id_token_is_refused(string forgery)
    {
        var (tenantId, domain) = await world.TenantWithSsoAsync();
        world.Provider.Email = $"eve@{domain}";
        world.Provider.AlterIdToken = forgery == "claim changed" ? ChangeEmail($"boss@{domain}") : ResignWithAnotherKey;
        try
        {
            var landing = await _browser.FollowAsync($"/portal/sso/start?email=eve@{domain}");

            Assert.Equal("/portal/sign-in?error=invalid-id-token", landing.PathAndQuery);
        }
        finally
        {
            world.Provider.AlterIdToken = null;
        }

        Assert.Null(world.PortalPrincipal(_browser));
        Assert.Null(await world.FindUserAsync($"eve@{domain}"));
        Assert.Null(await world.FindUserAsync($"boss@{domain}"));
        Assert.Equal("rejected:invalid-id-token", Assert.Single(await world.AuditAsync(tenantId, SsoSignIn.AuditAction)).Outcome);
    }

    [Fact]
    public async Task A_replayed_callback_is_refused_even_with_its_cookie()
    {
        var (tenantId, domain) = await world.TenantWithSsoAsync();
        world.Provider.Email = $"ken@{domain}";
        await _browser.FollowAsync($"/portal/sso/start?email=ken@{domain}");
        var callback = _browser.Visits.Single(visit => visit.Url.AbsolutePath == SsoSignIn.CallbackPath);
        Assert.Contains(SsoCorrelation.CookieName, callback.CookieHeader, StringComparison.Ordinal);
        Assert.NotNull(world.PortalPrincipal(_browser));

        // An attacker holding the whole callback request (URL and cookies) sends it again from another browser.
        using var attacker = world.NewBrowser();
        var replay = await attacker.GetAsync(callback.Url, callback.CookieHeader);

        Assert.Equal("/portal/sign-in?error=replayed", replay.Location!.PathAndQuery);
        Assert.Null(world.PortalPrincipal(attacker));
        var outcomes = (await world.AuditAsync(tenantId, SsoSignIn.AuditAction)).Select(record => record.Outcome).Order().ToList();
        Assert.Equal(["rejected:replayed", "succeeded"], outcomes);
    }

    [Fact]
    public async Task A_callback_without_this_browsers_sign_in_is_refused()
    {
        var (_, domain) = await world.TenantWithSsoAsync();
        world.Provider.Email = $"joan@{domain}";
        var start = await _browser.GetAsync(new Uri(SsoWorld.PortalBase, $"/portal/sso/start?email=joan@{domain}"));
        var atProvider = await _browser.GetAsync(start.Location!);

        // The provider's answer arrives in a browser that never started this sign-in (login CSRF).
        using var victim = world.NewBrowser();
        var callback = await victim.GetAsync(atProvider.Location!);

        Assert.Equal("/portal/sign-in?error=sign-in-expired", callback.Location!.PathAndQuery);
        Assert.Null(world.PortalPrincipal(victim));
        Assert.Null(await world.FindUserAsync($"joan@{domain}"));
    }

    [Fact]
    public async Task An_unverified_email_is_refused()
    {
        var (_, domain) = await world.TenantWithSsoAsync();
        world.Provider.Email = $"otto@{domain}";
        world.Provider.EmailVerified = false;
        try
        {
            var landing = await _browser.FollowAsync($"/portal/sso/start?email=otto@{domain}");

            Assert.Equal("/portal/sign-in?error=email-not-verified", landing.PathAndQuery);
        }
        finally
        {
            world.Provider.EmailVerified = true;
        }

        Assert.Null(await world.FindUserAsync($"otto@{domain}"));
    }

    [Fact]
    public async Task A_tenants_provider_cannot_sign_in_someone_who_has_access_elsewhere()
    {
        var (tenantId, domain) = await world.TenantWithSsoAsync();
        var (otherTenant, _) = await world.NewTenantAsync();
        using (var invited = await world.Admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{otherTenant}/members", new { email = $"cfo@{domain}", role = "owner" }))
        {
            await ControlPlaneApi.ExpectAsync(invited, HttpStatusCode.Created);
        }

        // The tenant's own provider vouches for an address of its domain that also owns another tenant.
        world.Provider.Email = $"cfo@{domain}";
        var landing = await _browser.FollowAsync($"/portal/sso/start?email=cfo@{domain}");

        Assert.Equal("/portal/sign-in?error=account-beyond-tenant", landing.PathAndQuery);
        Assert.Null(world.PortalPrincipal(_browser));
        Assert.DoesNotContain(await world.MembersAsync(tenantId), m => (string?)m["email"] == $"cfo@{domain}");
    }

    public void Dispose() => _browser.Dispose();

    private static Func<string, string> ChangeEmail(string email) => token =>
    {
        var parts = token.Split('.');
        var payload = JsonNode.Parse(WebEncoders.Base64UrlDecode(parts[1]))!;
        payload["email"] = email;
        return $"{parts[0]}.{WebEncoders.Base64UrlEncode(Encoding.UTF8.GetBytes(payload.ToJsonString()))}.{parts[2]}";
    };

    /// <summary>The same header and claims, signed by a key the provider never published.</summary>
    private static string ResignWithAnotherKey(string token)
    {
        var parts = token.Split('.');
        using var forger = RSA.Create(2048);
        var signature = forger.SignData(Encoding.ASCII.GetBytes($"{parts[0]}.{parts[1]}"), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        return $"{parts[0]}.{parts[1]}.{WebEncoders.Base64UrlEncode(signature)}";
    }
}
