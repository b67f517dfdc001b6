using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using ControlPlane.Tests.Support;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace ControlPlane.Tests.Portal;

/// <summary>
/// The portal as customers use it, in real headless Chromium against the real host: first sign-in from the printed link,
/// an instance created and watched to Running without a reload, its credentials revealed and used by a Redis client, a
/// viewer's narrower rights, an API key created and revoked, the instance deleted; at 1280 and 390 px.
/// </summary>
[Collection(PortalCollection.Name)]
public sealed class PortalBrowserTests(PortalHost portal, ITestOutputHelper output)
{
    private static readonly TimeSpan s_running = TimeSpan.FromSeconds(90);

    private string BaseUrl => portal.Host.BaseAddress.ToString();

    [Fact]
    public async Task A_newcomer_signs_in_creates_uses_shares_and_deletes_an_instance_at_desktop_and_phone_widths()
    {
        var tenantId = (string)(await portal.Admin.CreateTenantAsync("Acme Corp", "team"))["id"]!;
        var screenshots = new List<string>();
        var formsWithoutToken = new List<string>();
        var page = await portal.NewPageAsync(1280);

        async Task CheckPageAsync(string name)
        {
            formsWithoutToken.AddRange((await PortalHost.PostFormsWithoutAntiforgeryAsync(page)).Select(form => $"{name}: {form}"));
            screenshots.Add(await PortalHost.ScreenshotAsync(page, name));
            await page.SetViewportSizeAsync(390, 844);
            Assert.True(await PortalHost.FitsWidthAsync(page), $"{name} scrolls sideways at 390 px");
            screenshots.Add(await PortalHost.ScreenshotAsync(page, name));
            await page.SetViewportSizeAsync(1280, 900);
        }

        // First start printed the portal's URL and a one-time link, and wrote the link 0600 to the data directory.
        var linkFile = Path.Combine(portal.DataDirectory, "portal-sign-in-link");
        var link = File.ReadAllText(linkFile).Trim();
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(linkFile));
        Assert.Contains(portal.Host.Output, line => line.Contains($"Portal: {BaseUrl}portal", StringComparison.Ordinal) && line.Contains(link, StringComparison.Ordinal));

        await page.GotoAsync(link);
        await CheckPageAsync("01-sign-in-link");
        await PortalHost.RedeemLinkAndSetPasswordAsync(page, link);

        // The link worked once: a second use is refused.
        var reused = await portal.NewPageAsync(1280);
        await reused.GotoAsync(link);
        var second = await reused.RunAndWaitForResponseAsync(
            () => reused.GetByRole(AriaRole.Button, new() { Name = "Continue" }).ClickAsync(), response => response.Request.Method == "POST");
        Assert.Equal(410, second.Status);
        await reused.Context.CloseAsync();

        // Signs out and in again with the password just chosen; a platform admin sees the tenant list.
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await page.WaitForURLAsync("**/portal/sign-in");
        await CheckPageAsync("02-sign-in");
        await PortalHost.SignInAsync(page, BaseUrl, "admin@localhost");
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = "Acme Corp" })).ToBeVisibleAsync();
        await CheckPageAsync("03-tenants");
        await page.GetByRole(AriaRole.Link, new() { Name = "Acme Corp" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Acme Corp" })).ToBeVisibleAsync();

        // Creates an instance and watches it reach Running on the dashboard, without a reload.
        await page.GetByRole(AriaRole.Link, new() { Name = "Create instance" }).ClickAsync();
        await CheckPageAsync("04-create-instance");
        await page.Locator("#name").FillAsync("orders-cache");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create instance" }).ClickAsync();
        await page.WaitForURLAsync($"**/portal/tenants/{tenantId}?**");
        var row = page.Locator("tr", new() { HasText = "orders-cache" });
        await page.EvaluateAsync("() => { window.__sameDocument = true; }");
        var initialState = await row.Locator("[data-field=state]").TextContentAsync();
        screenshots.Add(await PortalHost.ScreenshotAsync(page, "05-dashboard-creating"));
        await Expect(row.Locator("[data-field=state]")).ToHaveTextAsync("Running", new() { Timeout = (float)s_running.TotalMilliseconds });
        Assert.True(await page.EvaluateAsync<bool>("() => window.__sameDocument === true"), "the dashboard reloaded instead of updating in place");
        output.WriteLine($"dashboard showed '{initialState}' after the create, then Running without a reload");
        await Expect(row.Locator("[data-field=endpoint]")).ToContainTextAsync("127.0.0.1:");
        await CheckPageAsync("06-dashboard-running");

        // A refusal from the domain reads as the API's words, on the form, with the API's status.
        await page.GetByRole(AriaRole.Link, new() { Name = "Create instance" }).ClickAsync();
        await page.Locator("#name").FillAsync("orders-cache");
        var refused = await page.RunAndWaitForResponseAsync(
            () => page.GetByRole(AriaRole.Button, new() { Name = "Create instance" }).ClickAsync(), response => response.Request.Method == "POST");
        Assert.Equal(409, refused.Status);
        await Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("Name already in use");
        screenshots.Add(await PortalHost.ScreenshotAsync(page, "06b-create-refused"));
        await page.GotoAsync($"{BaseUrl}portal/tenants/{tenantId}");

        // Reveals the credentials (audited, not cached) and uses them with a real Redis client.
        await row.GetByRole(AriaRole.Link, new() { Name = "orders-cache" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "orders-cache" })).ToBeVisibleAsync();
        await CheckPageAsync("07-instance");
        var reveal = await page.RunAndWaitForResponseAsync(
            () => page.GetByRole(AriaRole.Button, new() { Name = "Reveal credentials" }).ClickAsync(), response => response.Request.Method == "POST");
        Assert.Contains("no-store", await reveal.HeaderValueAsync("cache-control") ?? "");
        var credentials = PortalHost.Credentials(
            await page.Locator("[data-credential=host]").InnerTextAsync(),
            int.Parse(await page.Locator("[data-credential=port]").InnerTextAsync(), System.Globalization.CultureInfo.InvariantCulture),
            await page.Locator("[data-credential=password]").InnerTextAsync());
        await using (var redis = await GarnetClient.ConnectAsync(credentials))
        {
            await redis.GetDatabase().StringSetAsync("portal", "works");
            Assert.Equal("works", (string?)await redis.GetDatabase().StringGetAsync("portal"));
        }

        screenshots.Add(await PortalHost.ScreenshotAsync(page, "08-credentials"));
        var instanceUrl = page.Url;

        // A session that has not confirmed the password is asked for it before the secret is shown; a wrong one shows
        // nothing. Here: a member with a password signs in with a fresh one-time link (an invitation to a second tenant).
        using (var invited = await portal.Admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/members", new { email = "mia@acme.example", role = "member" }))
        {
            var member = await portal.NewPageAsync(1280);
            await PortalHost.RedeemLinkAndSetPasswordAsync(member, (string)(await ControlPlaneApi.ExpectAsync(invited, HttpStatusCode.Created))["signInLink"]!["url"]!);
            await member.Context.CloseAsync();
        }

        var (_, freshLink) = await portal.AddToNewTenantAsync("Acme Labs", "mia@acme.example", "viewer");
        var linked = await portal.NewPageAsync(1280);
        await linked.GotoAsync(freshLink);
        await linked.GetByRole(AriaRole.Button, new() { Name = "Continue" }).ClickAsync();
        await linked.WaitForURLAsync("**/portal/account**");
        await linked.GotoAsync(instanceUrl);
        await linked.Locator("#confirm-password").FillAsync("not my password at all");
        var wrong = await linked.RunAndWaitForResponseAsync(
            () => linked.GetByRole(AriaRole.Button, new() { Name = "Reveal credentials" }).ClickAsync(), response => response.Request.Method == "POST");
        Assert.Equal(401, wrong.Status);
        Assert.Equal(0, await linked.Locator("[data-credential=password]").CountAsync());
        await linked.Locator("#confirm-password").FillAsync(PortalHost.Password);
        await linked.GetByRole(AriaRole.Button, new() { Name = "Reveal credentials" }).ClickAsync();
        Assert.Equal((string)credentials["password"]!, await linked.Locator("[data-credential=password]").InnerTextAsync());
        await linked.Context.CloseAsync();

        // Adds a viewer, who signs in on a phone and sees no create, delete or credentials, and is refused if it posts anyway.
        await page.GotoAsync($"{BaseUrl}portal/tenants/{tenantId}/team");
        await page.Locator("#invite-email").FillAsync("vera@acme.example");
        await page.Locator("#invite-role").SelectOptionAsync("viewer");
        await page.GetByRole(AriaRole.Button, new() { Name = "Invite" }).ClickAsync();
        var invitation = (await page.Locator("#invite-link").InnerTextAsync()).Trim();
        Assert.StartsWith($"{BaseUrl}portal/sign-in/link?token=", invitation, StringComparison.Ordinal);
        await CheckPageAsync("09-team");

        var viewer = await portal.NewPageAsync(390, 844);
        await PortalHost.RedeemLinkAndSetPasswordAsync(viewer, invitation);
        await viewer.WaitForURLAsync($"**/portal/tenants/{tenantId}");
        await Expect(viewer.Locator("tr", new() { HasText = "orders-cache" }).Locator("[data-field=state]")).ToHaveTextAsync("Running");
        Assert.Equal(0, await viewer.GetByRole(AriaRole.Link, new() { Name = "Create instance" }).CountAsync());
        Assert.Equal(0, await viewer.GetByRole(AriaRole.Link, new() { Name = "API keys" }).CountAsync());
        screenshots.Add(await PortalHost.ScreenshotAsync(viewer, "10-viewer-dashboard"));
        await viewer.GotoAsync(instanceUrl);
        Assert.Equal(0, await viewer.GetByRole(AriaRole.Button, new() { Name = "Delete instance" }).CountAsync());
        Assert.Equal(0, await viewer.GetByRole(AriaRole.Button, new() { Name = "Reveal credentials" }).CountAsync());
        screenshots.Add(await PortalHost.ScreenshotAsync(viewer, "11-viewer-instance"));
        Assert.Equal(403, await PortalHost.PostFromPageAsync(
            viewer, $"/portal/tenants/{tenantId}/instances/new", new Dictionary<string, string> { ["name"] = "sneaky", ["product"] = "garnet", ["size"] = "small" }, withToken: true));
        Assert.Equal(403, await PortalHost.PostFromPageAsync(
            viewer, new Uri(instanceUrl).AbsolutePath + "?handler=Delete", new Dictionary<string, string> { ["confirmName"] = "orders-cache" }, withToken: true));
        Assert.Equal(403, await PortalHost.PostFromPageAsync(viewer, new Uri(instanceUrl).AbsolutePath + "?handler=Reveal", new Dictionary<string, string>(), withToken: true));
        await viewer.Context.CloseAsync();

        // Creates an API key (its secret shown once), uses it, revokes it: the API refuses it.
        await page.GotoAsync($"{BaseUrl}portal/tenants/{tenantId}/api-keys");
        await page.Locator("#key-name").FillAsync("deploy pipeline");
        await page.Locator("#key-role").SelectOptionAsync("member");
        await page.GetByRole(AriaRole.Button, new() { Name = "Create key" }).ClickAsync();
        var secret = (await page.Locator("[data-secret=api-key]").InnerTextAsync()).Trim();
        screenshots.Add(await PortalHost.ScreenshotAsync(page, "12-api-key-created"));
        using var keyed = new HttpClient { BaseAddress = portal.Host.BaseAddress };
        keyed.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", secret);
        Assert.Equal(HttpStatusCode.OK, (await keyed.GetAsync($"/api/v1/tenants/{tenantId}/instances")).StatusCode);
        // The secret was in that answer only: the page opened again does not show it.
        await page.GotoAsync($"{BaseUrl}portal/tenants/{tenantId}/api-keys");
        Assert.Equal(0, await page.Locator("[data-secret=api-key]").CountAsync());
        page.Dialog += async (_, dialog) => await dialog.AcceptAsync();
        await page.Locator("tr", new() { HasText = "deploy pipeline" }).GetByRole(AriaRole.Button, new() { Name = "Revoke" }).ClickAsync();
        await Expect(page.Locator("tr", new() { HasText = "deploy pipeline" }).Locator("[data-field=key-status]")).ToHaveTextAsync("revoked");
        await CheckPageAsync("13-api-keys");
        Assert.Equal(HttpStatusCode.Unauthorized, await EventuallyAsync(async () => (await keyed.GetAsync($"/api/v1/tenants/{tenantId}/instances")).StatusCode, HttpStatusCode.Unauthorized));

        // The audit log shows the person's credential read and key changes under their name.
        await page.GotoAsync($"{BaseUrl}portal/tenants/{tenantId}/audit");
        var credentialReads = page.Locator("tr", new() { HasText = "instance.credentials.read" });
        await Expect(credentialReads.Filter(new() { HasText = "admin@localhost" })).ToHaveCountAsync(1);
        await Expect(credentialReads.Filter(new() { HasText = "mia@acme.example" })).ToHaveCountAsync(1);
        await Expect(page.Locator("tr", new() { HasText = "api-key.revoke" })).ToContainTextAsync("admin@localhost");
        await CheckPageAsync("14-audit");

        // Deletes the instance after typing its name; the dashboard shows it gone.
        await page.GotoAsync(instanceUrl);
        await page.GetByText("Delete this instance").ClickAsync();
        await page.Locator("#confirm-name").FillAsync("orders-cache");
        await page.GetByRole(AriaRole.Button, new() { Name = "Delete instance" }).ClickAsync();
        await page.WaitForURLAsync($"**/portal/tenants/{tenantId}");
        await page.EvaluateAsync("() => { window.__sameDocument = true; }");
        var instanceId = new Uri(instanceUrl).Segments[^1];
        await portal.Admin.WaitForInstanceAsync(tenantId, instanceId, instance => (string?)instance["state"] == "Deleted", s_running);
        // Gone from the tenant's list: a row the server rendered while it was Deleting now says Deleted, in place.
        await Expect(page.Locator("tr", new() { HasText = "orders-cache" }).Locator("[data-field=state]").Filter(new() { HasNotText = "Deleted" })).ToHaveCountAsync(0);
        Assert.True(await page.EvaluateAsync<bool>("() => window.__sameDocument === true"));
        screenshots.Add(await PortalHost.ScreenshotAsync(page, "15-dashboard-deleted"));

        Assert.Empty(formsWithoutToken);
        output.WriteLine($"screenshots ({screenshots.Count}) in {PortalHost.ScreenshotDirectory}:");
        screenshots.ForEach(output.WriteLine);
    }

    [Fact]
    public async Task The_dashboard_is_rendered_by_the_server_quickly()
    {
        var (tenantId, link) = await portal.CreateTenantWithPersonAsync("Speedy Ltd", "sam@speedy.example");
        await portal.Admin.CreateInstanceAsync(tenantId, "speedy-cache");
        var page = await portal.NewPageAsync(1280);
        await PortalHost.RedeemLinkAndSetPasswordAsync(page, link);
        await page.WaitForURLAsync($"**/portal/tenants/{tenantId}");

        // The instance row is in the HTML the server sent: no spinner, no second request needed to show it.
        var html = await page.EvaluateAsync<string>("async () => await (await fetch(location.pathname)).text()");
        Assert.Contains("speedy-cache", html, StringComparison.Ordinal);

        var firstByte = new List<double>();
        for (var i = 0; i < 20; i++)
        {
            await page.ReloadAsync();
            firstByte.Add(await page.EvaluateAsync<double>("() => { const n = performance.getEntriesByType('navigation')[0]; return n.responseStart - n.requestStart; }"));
        }

        firstByte.Sort();
        // Printed, not asserted: the shared CI machine's load decides the figure (see bench/ for targets).
        output.WriteLine($"dashboard time to first byte over 20 loads: median {firstByte[10]:0.0} ms, worst {firstByte[^1]:0.0} ms");
    }

    private static async Task<T> EventuallyAsync<T>(Func<Task<T>> read, T expected)
    {
        var stopwatch = Stopwatch.StartNew();
        while (true)
        {
            var value = await read();
            if (Equals(value, expected) || stopwatch.Elapsed > TimeSpan.FromSeconds(10))
            {
                return value;
            }

            await Task.Delay(200);
        }
    }
}
