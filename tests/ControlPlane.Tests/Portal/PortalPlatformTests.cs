using System.Net;
using System.Text.Json.Nodes;
using ControlPlane.Tests.Support;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace ControlPlane.Tests.Portal;

/// <summary>A platform admin in the browser: creates a tenant with its first owner, manages the platform's people and its API keys.</summary>
[Collection(PortalCollection.Name)]
public sealed class PortalPlatformTests(PortalHost portal)
{
    private string BaseUrl => portal.Host.BaseAddress.ToString();

    [Fact]
    public async Task A_platform_admin_creates_a_tenant_with_its_owner_and_manages_platform_people_and_keys()
    {
        using var invited = await portal.Admin.SendAsync(HttpMethod.Post, "/api/v1/platform/members", new { email = "pat@platform.example", role = "platform-admin" });
        var link = (string)(await ControlPlaneApi.ExpectAsync(invited, HttpStatusCode.Created))["signInLink"]!["url"]!;
        var startedAt = DateTimeOffset.UtcNow.AddMinutes(-1);
        var page = await portal.NewPageAsync(1280);
        await PortalHost.RedeemLinkAndSetPasswordAsync(page, link);
        await page.GotoAsync(BaseUrl + "portal");

        // A tenant and its first owner, whose one-time link is shown once.
        await page.Locator("#tenant-name").FillAsync("Portal Made");
        await page.Locator("#tenant-plan").SelectOptionAsync("team");
        await page.Locator("#tenant-owner").FillAsync("olga@portalmade.example");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create tenant" }).ClickAsync();
        await Expect(page.Locator("#owner-link")).ToContainTextAsync("/portal/sign-in/link?token=");
        await CheckAsync(page, "18-platform-tenant-created");
        var tenant = (await portal.Admin.ListAllAsync("/api/v1/tenants")).Single(t => (string?)t["name"] == "Portal Made");
        Assert.Equal("team", (string?)tenant["plan"]);
        var owner = Assert.Single((await portal.Admin.GetAsync($"/api/v1/tenants/{tenant["id"]}/members"))["items"]!.AsArray())!;
        Assert.Equal(("olga@portalmade.example", "owner"), ((string?)owner["email"], (string?)owner["role"]));

        // A bad owner address creates nothing.
        var tenantsBefore = (await portal.Admin.ListAllAsync("/api/v1/tenants")).Count;
        await page.Locator("#tenant-name").FillAsync("Typo Ltd");
        await page.Locator("#tenant-owner").EvaluateAsync("input => input.type = 'text'");
        await page.Locator("#tenant-owner").FillAsync("not-an-address");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create tenant" }).ClickAsync();
        await Expect(page.Locator(".notice.error")).ToContainTextAsync("email");
        Assert.Equal(tenantsBefore, (await portal.Admin.ListAllAsync("/api/v1/tenants")).Count);

        // Platform people: an SRE added with a link, then removed.
        await page.GetByRole(AriaRole.Link, new() { Name = "Platform people" }).ClickAsync();
        await page.Locator("#person-email").FillAsync("sam@platform.example");
        await page.Locator("#person-role").SelectOptionAsync("sre");
        await page.GetByRole(AriaRole.Button, new() { Name = "Add" }).ClickAsync();
        await Expect(page.Locator("#invite-link")).ToContainTextAsync("/portal/sign-in/link?token=");
        var row = page.Locator("tr", new() { HasText = "sam@platform.example" });
        await Expect(row).ToContainTextAsync("sre");
        await CheckAsync(page, "19-platform-people");
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await row.GetByRole(AriaRole.Button, new() { Name = "Remove" }).ClickAsync();
        await Expect(page.Locator(".notice")).ToContainTextAsync("no longer has a platform role");
        Assert.DoesNotContain((await portal.Admin.GetAsync("/api/v1/platform/members"))["items"]!.AsArray(), m => (string?)m!["email"] == "sam@platform.example");

        // Platform API keys: the secret is shown once and works at its role; revoked, it is refused.
        await page.GetByRole(AriaRole.Link, new() { Name = "API keys" }).ClickAsync();
        await page.Locator("#key-name").FillAsync("sre tooling");
        await page.Locator("#key-role").SelectOptionAsync("sre");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create key" }).ClickAsync();
        var secret = (await page.Locator("#key-secret").InnerTextAsync()).Trim();
        await CheckAsync(page, "20-platform-api-keys");
        var sre = portal.Host.CreateApi(secret);
        Assert.Equal("sre", (string?)(await sre.GetAsync("/api/v1/me"))["platformRole"]);
        await page.GotoAsync(BaseUrl + "portal/platform/api-keys");
        await page.Locator("tr", new() { HasText = "sre tooling" }).GetByRole(AriaRole.Button, new() { Name = "Revoke" }).ClickAsync();
        await Expect(page.Locator(".notice")).ToContainTextAsync("is revoked");
        using var refused = await sre.Http.GetAsync("/api/v1/me");
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);

        // Every action is the person's, in the audit log.
        var records = (await portal.Admin.ListAllAsync("/api/v1/audit?since=" + Uri.EscapeDataString(startedAt.ToString("O"))))
            .Where(r => ((string?)r["actor"])?.Contains("pat@platform.example", StringComparison.Ordinal) == true);
        var actions = records.Select(r => (string?)r["action"]).ToHashSet();
        Assert.Superset(new HashSet<string?> { "tenant.create", "member.add", "platform-member.add", "platform-member.remove", "api-key.create", "api-key.revoke" }, actions);
    }

    /// <summary>Every form carries antiforgery; the page fits 390 px; screenshots at both widths.</summary>
    private static async Task CheckAsync(IPage page, string name)
    {
        Assert.Empty(await PortalHost.PostFormsWithoutAntiforgeryAsync(page));
        await PortalHost.ScreenshotAsync(page, name);
        await page.SetViewportSizeAsync(390, 844);
        Assert.True(await PortalHost.FitsWidthAsync(page), $"{name} scrolls sideways at 390 px");
        await PortalHost.ScreenshotAsync(page, name);
        await page.SetViewportSizeAsync(1280, 900);
    }
}
