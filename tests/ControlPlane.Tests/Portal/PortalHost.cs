using System.Net;
using System.Text.Json.Nodes;
using ControlPlane.Tests.Support;
using Microsoft.Playwright;

namespace ControlPlane.Tests.Portal;

/// <summary>
/// The real control plane process (Playwright needs a real TCP port) and the machine's headless Chromium, shared by the
/// portal's browser tests. Chromium comes from the OS (<c>apt-get install chromium</c>; .ci/run installs it), never
/// from <c>playwright install</c>.
/// </summary>
public sealed class PortalHost : IAsyncLifetime
{
    public const string ChromiumPath = "/usr/bin/chromium";
    public const string Password = "correct horse battery staple";

    private readonly TestDirectory _directory = new();
    private IPlaywright? _playwright;

    public ControlPlaneProcess Host { get; private set; } = null!;

    public IBrowser Browser { get; private set; } = null!;

    public ControlPlaneApi Admin { get; private set; } = null!;

    public string DataDirectory => _directory.Path;

    /// <summary>Where the screenshots go: beside the test assembly, kept after the run.</summary>
    public static string ScreenshotDirectory { get; } = Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "portal-screenshots")).FullName;

    public async Task InitializeAsync()
    {
        if (!File.Exists(ChromiumPath))
        {
            throw new InvalidOperationException($"The portal's browser tests need Chromium at {ChromiumPath}: apt-get install -y chromium (.ci/run does).");
        }

        Host = new ControlPlaneProcess(_directory.Path, Ports.InstanceRange());
        await Host.StartAsync();
        Admin = Host.CreateAdminApi();
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }

        _playwright?.Dispose();
        await Host.DisposeAsync();
        _directory.Dispose();
    }

    public string Url(string path) => new Uri(Host.BaseAddress, path).ToString();

    public async Task<IPage> NewPageAsync(int width, int height = 900)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = width, Height = height } });
        // Generous: the CI machine is shared, and a loaded one takes seconds over a navigation.
        context.SetDefaultTimeout(60_000);
        context.SetDefaultNavigationTimeout(60_000);
        return await context.NewPageAsync();
    }

    /// <summary>A tenant made through the API, with a person invited at <paramref name="role"/>; answers their one-time link.</summary>
    public Task<(string TenantId, string SignInLink)> CreateTenantWithPersonAsync(string tenantName, string email, string role = "owner") =>
        AddToNewTenantAsync(tenantName, email, role);

    /// <summary>The same for a person who may exist already: the answer is a fresh one-time link for them.</summary>
    public async Task<(string TenantId, string SignInLink)> AddToNewTenantAsync(string tenantName, string email, string role)
    {
        var tenantId = (string)(await Admin.CreateTenantAsync(tenantName, "team"))["id"]!;
        using var response = await Admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/members", new { email, role });
        var added = await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.Created);
        return (tenantId, (string)added["signInLink"]!["url"]!);
    }

    /// <summary>Opens a one-time link, continues, and chooses a password, as a newcomer does; ends on the page after.</summary>
    public static async Task RedeemLinkAndSetPasswordAsync(IPage page, string link)
    {
        await page.GotoAsync(link);
        await page.GetByRole(AriaRole.Button, new() { Name = "Continue" }).ClickAsync();
        await page.WaitForURLAsync("**/portal/account**");
        await page.Locator("#new-password").FillAsync(Password);
        await page.Locator("#repeat").FillAsync(Password);
        await page.GetByRole(AriaRole.Button, new() { Name = "Save password" }).ClickAsync();
        await page.WaitForURLAsync(url => !url.Contains("/account", StringComparison.Ordinal));
    }

    public static async Task SignInAsync(IPage page, string baseUrl, string email)
    {
        await page.GotoAsync(baseUrl + "portal/sign-in");
        await page.Locator("#email").FillAsync(email);
        await page.Locator("#password").FillAsync(Password);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in", Exact = true }).ClickAsync();
        await page.WaitForURLAsync(url => !url.Contains("/sign-in", StringComparison.Ordinal));
    }

    /// <summary>Every form that posts carries an antiforgery token; answers the forms that do not (by their handler or action).</summary>
    public static Task<string[]> PostFormsWithoutAntiforgeryAsync(IPage page) =>
        page.EvaluateAsync<string[]>("""
            () => [...document.querySelectorAll('form')]
                .filter(f => (f.getAttribute('method') || 'get').toLowerCase() === 'post')
                .filter(f => !f.querySelector('input[name="__RequestVerificationToken"]')?.value)
                .map(f => f.getAttribute('action') || location.pathname)
            """);

    /// <summary>POSTs a form from inside the page (the browser sends the session cookie), with or without the page's antiforgery token.</summary>
    public static Task<int> PostFromPageAsync(IPage page, string path, IDictionary<string, string> fields, bool withToken) =>
        page.EvaluateAsync<int>(
            """
            async ([path, fields, withToken]) => {
                const body = new URLSearchParams(fields);
                const token = document.querySelector('input[name="__RequestVerificationToken"]')?.value;
                if (withToken && token) body.set('__RequestVerificationToken', token);
                const response = await fetch(path, { method: 'POST', body, redirect: 'manual', credentials: 'same-origin' });
                return response.status;
            }
            """,
            new object[] { path, fields, withToken });

    public static async Task<string> ScreenshotAsync(IPage page, string name)
    {
        var path = Path.Combine(ScreenshotDirectory, $"{name}-{page.ViewportSize!.Width}.png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        return path;
    }

    /// <summary>True when the page is no wider than the window (nothing to scroll sideways, e.g. at 390 px).</summary>
    public static Task<bool> FitsWidthAsync(IPage page) =>
        page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth");

    public static JsonObject Credentials(string host, int port, string password) => new() { ["host"] = host, ["port"] = port, ["password"] = password };
}

[CollectionDefinition(Name)]
public sealed class PortalCollection : ICollectionFixture<PortalHost>
{
    public const string Name = "Portal";
}
