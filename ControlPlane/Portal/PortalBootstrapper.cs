using ControlPlane.Auditing;
using ControlPlane.Hosting;
using ControlPlane.Identity;
using ControlPlane.Persistence;
using ControlPlane.Security;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;

namespace ControlPlane.Portal;

/// <summary>
/// Embedded mode's first sign-in: the bootstrap person (<see cref="PortalOptions.BootstrapAdminEmail"/>) is made platform
/// admin and, until they have set a password, every start gives them a one-time sign-in link, written 0600 to
/// <c>&lt;dataDir&gt;/portal-sign-in-link</c> and printed once with the portal's URL, so a newcomer needs no identity
/// provider and no API call. One process owns an embedded data directory (its lock), so this runs once at a time. In
/// cluster mode people are added through the API (<c>POST /api/v1/platform/members</c> answers their link).
/// </summary>
public sealed partial class PortalBootstrapper(
    Database database,
    DataDirectory dataDirectory,
    UserDirectory users,
    LocalAccounts accounts,
    AuditLog audit,
    IOptions<PortalOptions> options,
    IServer server,
    IHostApplicationLifetime lifetime,
    ILogger<PortalBootstrapper> logger) : IHostedService
{
    public const string LinkFileName = "portal-sign-in-link";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        string? linkPath = null;
        string? token = null;
        if (!database.IsShared)
        {
            (linkPath, token) = await PrepareFirstSignInAsync(cancellationToken);
        }

        lifetime.ApplicationStarted.Register(() =>
        {
            var portal = PortalUrl();
            if (token is null)
            {
                LogPortal(portal);
                return;
            }

            // The link is the newcomer's way in, so it is printed, as the README promises: it works once, for
            // UserDirectory.SignInLinkLifetime, and only until a password is set. A copy is in the private file.
            var link = $"{portal}/sign-in/link?token={token}";
            PrivateFile.WriteAsync(linkPath!, link, CancellationToken.None).GetAwaiter().GetResult();
            LogFirstSignIn(portal, options.Value.BootstrapAdminEmail, link, linkPath!);
        });
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task<(string Path, string? Token)> PrepareFirstSignInAsync(CancellationToken cancellationToken)
    {
        var path = dataDirectory.File(LinkFileName);
        var email = options.Value.BootstrapAdminEmail;
        var person = await users.FindByEmailAsync(email, cancellationToken);
        if (person is null)
        {
            person = await users.EnsureUserAsync(email, "Platform admin", cancellationToken);
            await users.SetPlatformRoleAsync(person.Id, Roles.PlatformAdmin, cancellationToken);
            await audit.RecordAsync(new AuditEntry("system", null, "platform-member.add", person.Id, "succeeded", $"{person.Email} as {Roles.PlatformAdmin} (portal bootstrap)"), cancellationToken);
        }

        if (await accounts.HasPasswordAsync(person.Id, cancellationToken))
        {
            File.Delete(path);
            return (path, null);
        }

        var (token, _) = await users.CreateSignInLinkAsync(person.Id, cancellationToken);
        return (path, token);
    }

    private string PortalUrl()
    {
        var address = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? "http://127.0.0.1:5080";
        // A wildcard listener (http://0.0.0.0:5080, http://[::]:5080) is reached locally on the loopback address.
        address = address.Replace("://0.0.0.0", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://[::]", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://+", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://*", "://127.0.0.1", StringComparison.Ordinal);
        return address.TrimEnd('/') + "/portal";
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Portal: {PortalUrl}")]
    private partial void LogPortal(string portalUrl);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Portal: {PortalUrl} — first sign-in for {Email}: open {SignInLink} (works once; a copy is in {Path}) and set a password")]
    private partial void LogFirstSignIn(string portalUrl, string email, string signInLink, string path);
}
