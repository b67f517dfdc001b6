using ControlPlane.Tests.Support;
using Microsoft.Playwright;

namespace ControlPlane.Tests.Portal;

/// <summary>An owner's audit log (filtered, exported) and SSO settings page, in the browser.</summary>
[Collection(PortalCollection.Name)]
public sealed class PortalAuditAndSsoTests(PortalHost portal)
{
    private string BaseUrl => portal.Host.BaseAddress.ToString();

    [Fact]
    public async Task An_owner_filters_and_exports_the_audit_log_and_an_sso_issuer_that_does_not_answer_is_refused_in_words()
    {
        var (tenantId, link) = await portal.CreateTenantWithPersonAsync("Filter Ltd", "fay@filter.example");
        await portal.Admin.CreateInstanceAsync(tenantId, "filter-cache");
        var page = await portal.NewPageAsync(1280);
        await PortalHost.RedeemLinkAndSetPasswordAsync(page, link);

        // Filtered: only the instance's create among the tenant's records (the invitation, the sign-in, …).
        await page.GotoAsync($"{BaseUrl}portal/tenants/{tenantId}/audit");
        var all = await page.Locator("table.list tbody tr").CountAsync();
        await page.Locator("#audit-action").FillAsync("instance.create");
        await page.GetByRole(AriaRole.Button, new() { Name = "Filter" }).ClickAsync();
        await page.WaitForURLAsync("**action=instance.create**");
        var rows = page.Locator("table.list tbody tr");
        Assert.Equal(1, await rows.CountAsync());
        Assert.True(all > 1, $"the unfiltered log had {all} rows");
        Assert.Contains("instance.create", await rows.First.InnerTextAsync(), StringComparison.Ordinal);
        await PortalHost.ScreenshotAsync(page, "16-audit-filtered");

        // The export link carries the filter; the export is the API's, and is itself recorded.
        var href = await page.GetByRole(AriaRole.Link, new() { Name = "CSV" }).GetAttributeAsync("href");
        var export = await page.APIRequest.GetAsync(new Uri(new Uri(page.Url), href!).ToString());
        Assert.Equal(200, export.Status);
        var lines = (await export.TextAsync()).Trim().Split('\n');
        Assert.Equal(2, lines.Length);
        Assert.Contains("instance.create", lines[1], StringComparison.Ordinal);
        var exports = await portal.Admin.ListAllAsync($"/api/v1/tenants/{tenantId}/audit?action=audit.export");
        Assert.Contains("fay@filter.example", (string?)Assert.Single(exports)["actor"], StringComparison.Ordinal);

        // SSO: the issuer is checked before anything is saved; the refusal is said in words on the page.
        await page.GetByRole(AriaRole.Link, new() { Name = "SSO" }).ClickAsync();
        await page.Locator("#sso-issuer").FillAsync("http://127.0.0.1:9/");
        await page.Locator("#sso-client-id").FillAsync("controlplane");
        await page.Locator("#sso-client-secret").FillAsync("a-client-secret");
        await page.Locator("#sso-domains").FillAsync("filter.example");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await page.WaitForLoadStateAsync();
        Assert.Contains("could not be read", await page.InnerTextAsync("body"), StringComparison.Ordinal);
        Assert.Contains("Not set up", await page.InnerTextAsync("#sso-status"), StringComparison.Ordinal);
        await PortalHost.ScreenshotAsync(page, "17-sso-refused");
        using var settings = await portal.Admin.Http.GetAsync($"/api/v1/tenants/{tenantId}/sso");
        Assert.Equal(System.Net.HttpStatusCode.NotFound, settings.StatusCode);
    }

    [Fact]
    public async Task The_audit_log_pages_back_through_older_entries_without_repeating_one()
    {
        var (tenantId, link) = await portal.CreateTenantWithPersonAsync("Pages Ltd", "paul@pages.example");
        for (var i = 0; i < 105; i++)
        {
            using var invited = await portal.Admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/members", new { email = $"person{i}@pages.example", role = "viewer" });
            Assert.Equal(System.Net.HttpStatusCode.Created, invited.StatusCode);
        }

        var page = await portal.NewPageAsync(1280);
        await PortalHost.RedeemLinkAndSetPasswordAsync(page, link);
        await page.GotoAsync($"{BaseUrl}portal/tenants/{tenantId}/audit?action=member.add");
        var first = await page.Locator("table.list tbody tr").AllInnerTextsAsync();
        Assert.Equal(100, first.Count);

        await page.GetByRole(AriaRole.Link, new() { Name = "Older entries" }).ClickAsync();
        await page.WaitForURLAsync("**before=**");
        var second = await page.Locator("table.list tbody tr").AllInnerTextsAsync();
        Assert.Equal(106 - 100, second.Count);
        Assert.Empty(first.Intersect(second));
        Assert.Equal(0, await page.GetByRole(AriaRole.Link, new() { Name = "Older entries" }).CountAsync());
        Assert.Contains("action=member.add", page.Url, StringComparison.Ordinal);
    }
}
