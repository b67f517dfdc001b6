using System.Net;

namespace ControlPlane.Tests.Sso;

/// <summary>One request a <see cref="Browser"/> made: where, with which cookies, and what came back.</summary>
public sealed record Visit(Uri Url, string CookieHeader, HttpStatusCode Status, Uri? Location);

/// <summary>
/// A browser, as far as SSO needs one: a cookie jar that keeps what each site sets (Secure, Path and expiry as a
/// browser keeps them), redirects followed by hand, one hop at a time, so tests see and can replay each step. Requests
/// for the control plane go to its in-memory test server; all others go over the network (the identity provider).
/// </summary>
public sealed class Browser(HttpMessageHandler controlPlane, Uri controlPlaneBase) : IDisposable
{
    private readonly HttpMessageInvoker _controlPlane = new(controlPlane);
    private readonly HttpMessageInvoker _network = new(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false });

    public CookieContainer Cookies { get; } = new();

    public List<Visit> Visits { get; } = [];

    /// <summary>Sends one GET with this browser's cookies for the URL (or <paramref name="cookieHeader"/> instead), keeping what it sets.</summary>
    public async Task<Visit> GetAsync(Uri url, string? cookieHeader = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        var cookies = cookieHeader ?? Cookies.GetCookieHeader(url);
        if (cookies.Length > 0)
        {
            request.Headers.Add("Cookie", cookies);
        }

        var onControlPlane = url.Host == controlPlaneBase.Host && url.Port == controlPlaneBase.Port;
        using var response = await (onControlPlane ? _controlPlane : _network).SendAsync(request, CancellationToken.None);
        if (response.Headers.TryGetValues("Set-Cookie", out var setCookies))
        {
            foreach (var setCookie in setCookies)
            {
                Cookies.SetCookies(url, setCookie);
            }
        }

        var location = response.Headers.Location is { } target ? new Uri(url, target) : null;
        var visit = new Visit(url, cookies, response.StatusCode, location);
        Visits.Add(visit);
        return visit;
    }

    /// <summary>
    /// Opens <paramref name="path"/> on the control plane and follows redirects until one leaves the SSO routes and the
    /// provider for a portal page (which it does not load); answers that page's URL.
    /// </summary>
    public async Task<Uri> FollowAsync(string path)
    {
        var url = new Uri(controlPlaneBase, path);
        for (var hop = 0; hop < 10; hop++)
        {
            var visit = await GetAsync(url);
            if (visit.Location is not { } next)
            {
                throw new InvalidOperationException($"{url} answered {(int)visit.Status} without a redirect.");
            }

            var stillSigningIn = next.AbsolutePath.StartsWith("/portal/sso/", StringComparison.Ordinal)
                || !(next.Host == controlPlaneBase.Host && next.Port == controlPlaneBase.Port);
            if (!stillSigningIn)
            {
                return next;
            }

            url = next;
        }

        throw new InvalidOperationException("Too many redirects.");
    }

    public string? Cookie(string name, string path = "/") => Cookies.GetCookies(new Uri(controlPlaneBase, path))[name]?.Value;

    public void Dispose()
    {
        _controlPlane.Dispose();
        _network.Dispose();
    }
}
