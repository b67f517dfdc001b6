using ControlPlane.Tests.Support;
using Microsoft.Playwright;

namespace ControlPlane.Tests.Portal;

/// <summary>What the portal refuses: forms without their antiforgery token, another tenant's pages, and what its headers forbid.</summary>
[Collection(PortalCollection.Name)]
public sealed class PortalSecurityTests(PortalHost portal)
{
    private string BaseUrl => portal.Host.BaseAddress.ToString();

    [Fact]
    public async Task Every_portal_form_carries_an_antiforgery_token_and_a_post_without_one_is_refused()
    {
        var (tenantId, link) = await portal.CreateTenantWithPersonAsync("Forms Ltd", "olga@forms.example");
        var instanceId = (string)(await portal.Admin.CreateInstanceAsync(tenantId, "forms-cache"))["instanceId"]!;
        var page = await portal.NewPageAsync(1280);

        await page.GotoAsync($"{BaseUrl}portal/sign-in");
        Assert.Empty(await PortalHost.PostFormsWithoutAntiforgeryAsync(page));
        Assert.Equal(400, await PortalHost.PostFromPageAsync(page, "/portal/sign-in", new Dictionary<string, string> { ["email"] = "olga@forms.example", ["password"] = "x" }, withToken: false));

        await PortalHost.RedeemLinkAndSetPasswordAsync(page, link);
        var pages = new[]
        {
            "portal", "portal/account", $"portal/tenants/{tenantId}", $"portal/tenants/{tenantId}/instances/new",
            $"portal/tenants/{tenantId}/instances/{instanceId}", $"portal/tenants/{tenantId}/team", $"portal/tenants/{tenantId}/api-keys",
            $"portal/tenants/{tenantId}/audit", $"portal/tenants/{tenantId}/sso",
        };
        var postForms = 0;
        foreach (var path in pages)
        {
            var response = await page.GotoAsync(BaseUrl + path);
            Assert.Equal(200, response!.Status);
            postForms += await page.Locator("form[method=post]").CountAsync();
            Assert.Empty(await PortalHost.PostFormsWithoutAntiforgeryAsync(page));
        }

        Assert.True(postForms >= 10, $"only {postForms} forms were checked");

        // Without the token, a signed-in person's post is refused and changes nothing; with it, the same post works.
        var invite = new Dictionary<string, string> { ["email"] = "mallory@forms.example", ["role"] = "admin" };
        Assert.Equal(400, await PortalHost.PostFromPageAsync(page, $"/portal/tenants/{tenantId}/team?handler=Invite", invite, withToken: false));
        Assert.Equal(400, await PortalHost.PostFromPageAsync(page, "/portal/sign-out", new Dictionary<string, string>(), withToken: false));
        var members = await portal.Admin.GetAsync($"/api/v1/tenants/{tenantId}/members");
        Assert.DoesNotContain(members["items"]!.AsArray(), member => (string?)member!["email"] == "mallory@forms.example");
        Assert.Equal(200, await PortalHost.PostFromPageAsync(page, $"/portal/tenants/{tenantId}/team?handler=Invite", invite, withToken: true));
        members = await portal.Admin.GetAsync($"/api/v1/tenants/{tenantId}/members");
        Assert.Contains(members["items"]!.AsArray(), member => (string?)member!["email"] == "mallory@forms.example");
    }

    [Fact]
    public async Task A_person_of_one_tenant_gets_404_for_every_page_of_another()
    {
        var (tenantA, link) = await portal.CreateTenantWithPersonAsync("Alpha Ltd", "ann@alpha.example");
        var tenantB = (string)(await portal.Admin.CreateTenantAsync("Beta Ltd", "team"))["id"]!;
        var instanceB = (string)(await portal.Admin.CreateInstanceAsync(tenantB, "beta-cache"))["instanceId"]!;
        var page = await portal.NewPageAsync(1280);
        await PortalHost.RedeemLinkAndSetPasswordAsync(page, link);

        Assert.Equal(200, (await page.GotoAsync($"{BaseUrl}portal/tenants/{tenantA}"))!.Status);
        foreach (var path in new[]
        {
            $"portal/tenants/{tenantB}", $"portal/tenants/{tenantB}/instances/{instanceB}", $"portal/tenants/{tenantB}/instances/new",
            $"portal/tenants/{tenantB}/team", $"portal/tenants/{tenantB}/api-keys", $"portal/tenants/{tenantB}/audit",
            $"portal/tenants/{tenantB}/live", $"portal/tenants/{tenantB}/instances/{instanceB}/live",
            // B's instance under A's own tenant: as unknown as any made-up id.
            $"portal/tenants/{tenantA}/instances/{instanceB}", "portal/tenants/tnt-doesnotexist00",
        })
        {
            var response = await page.GotoAsync(BaseUrl + path);
            Assert.True(response!.Status == 404, $"{path} answered {response.Status}");
        }

        // Posting into B is refused the same way, and the page says so in words.
        await page.GotoAsync($"{BaseUrl}portal/tenants/{tenantA}");
        Assert.Equal(404, await PortalHost.PostFromPageAsync(
            page, $"/portal/tenants/{tenantB}/instances/{instanceB}?handler=Delete", new Dictionary<string, string> { ["confirmName"] = "beta-cache" }, withToken: true));
        await page.GotoAsync($"{BaseUrl}portal/tenants/{tenantB}");
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Level = 1 })).ToHaveTextAsync("Tenant not found");
        Assert.DoesNotContain((string?)(await portal.Admin.GetInstanceAsync(tenantB, instanceB))["state"], new[] { "Deleting", "Deleted" });
    }

    [Fact]
    public async Task Portal_pages_forbid_framing_inline_script_and_caching_and_signed_out_people_are_sent_to_sign_in()
    {
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = portal.Host.BaseAddress };
        using var signIn = await http.GetAsync("/portal/sign-in");
        Assert.Equal(System.Net.HttpStatusCode.OK, signIn.StatusCode);
        var csp = string.Join(";", signIn.Headers.GetValues("Content-Security-Policy"));
        Assert.Contains("script-src 'self'", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-inline", csp, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", csp, StringComparison.Ordinal);
        Assert.Equal("DENY", signIn.Headers.GetValues("X-Frame-Options").Single());
        Assert.Equal("no-referrer", signIn.Headers.GetValues("Referrer-Policy").Single());
        Assert.Contains("no-store", signIn.Headers.CacheControl!.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("<script>", await signIn.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var dashboard = await http.GetAsync("/portal/tenants/tnt-anything00000");
        Assert.Equal(System.Net.HttpStatusCode.Redirect, dashboard.StatusCode);
        Assert.StartsWith("/portal/sign-in", dashboard.Headers.Location!.PathAndQuery, StringComparison.Ordinal);
        // The REST API stays bearer-key only: the portal's cookie scheme does not open it.
        using var api = await http.GetAsync("/api/v1/me");
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, api.StatusCode);
    }
}
