using System.Reflection;
using ControlPlane.Identity;
using ControlPlane.Security;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;

namespace ControlPlane.Portal;

/// <summary>
/// The web portal: server-rendered Razor Pages under <c>/portal</c> on the portal's cookie (<see cref="PortalSession"/>),
/// a stylesheet and a script served from the assembly, and small JSON reads the pages poll for live state. Every page
/// checks the same permission (<see cref="Access"/>) as the API endpoint it stands for and calls the same shared method.
/// </summary>
public static class PortalHosting
{
    /// <summary>The authorization policy of every portal page: a person signed in on the portal's cookie.</summary>
    public const string Policy = "portal";

    public static IServiceCollection AddPortal(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<LocalAccountOptions>().Bind(configuration.GetSection(LocalAccountOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<LocalAccountOptions>, LocalAccountOptionsValidator>();
        services.AddOptions<PortalOptions>().Bind(configuration.GetSection(PortalOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<PortalOptions>, PortalOptionsValidator>();
        services.AddSingleton<LocalAccounts>();
        services.AddHostedService<PortalBootstrapper>();
        services.AddAuthorizationBuilder().AddPolicy(Policy, policy => policy.AddAuthenticationSchemes(PortalSession.Scheme).RequireAuthenticatedUser());
        // First, ahead of the default writer, which would answer a browser's "*/*" with JSON.
        services.Insert(0, ServiceDescriptor.Singleton<IProblemDetailsWriter, PortalProblemWriter>());
        // Antiforgery refuses a Secure-only cookie on a plain-HTTP request (the embedded default on 127.0.0.1), so its
        // cookie is Secure whenever the request is; it is never readable by script and never sent cross-site.
        services.AddAntiforgery(antiforgery =>
        {
            antiforgery.Cookie.Name = "controlplane-antiforgery";
            antiforgery.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            antiforgery.Cookie.SameSite = SameSiteMode.Strict;
        });
        services.Configure<CookieTempDataProviderOptions>(notices =>
        {
            notices.Cookie.Name = "__Host-portal-notice";
            notices.Cookie.SecurePolicy = CookieSecurePolicy.Always;
        });
        services.AddRazorPages(pages =>
        {
            pages.RootDirectory = "/Portal/Pages";
            pages.Conventions.AuthorizeFolder("/", Policy);
            pages.Conventions.AllowAnonymousToPage("/SignIn");
            pages.Conventions.AllowAnonymousToPage("/SignInLink");
        });
        return services;
    }

    public static WebApplication MapPortal(this WebApplication app)
    {
        app.Use(async (context, next) =>
        {
            if (context.Request.Path.StartsWithSegments("/portal"))
            {
                AddSecurityHeaders(context.Response);
            }

            await next(context);
        });
        app.MapGet("/portal/assets/{name}", ServeAsset).AllowAnonymous().ExcludeFromDescription();
        app.MapLiveStatus();
        app.MapRazorPages();
        return app;
    }

    private static void AddSecurityHeaders(HttpResponse response)
    {
        var headers = response.Headers;
        headers.ContentSecurityPolicy =
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
        headers.XFrameOptions = "DENY";
        headers.XContentTypeOptions = "nosniff";
        // Sign-in links carry their token in the URL: never sent on to another page or site.
        headers["Referrer-Policy"] = "no-referrer";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        // Pages show people's own data and sometimes secrets: no browser or proxy keeps them. Assets override this.
        headers.CacheControl = "no-store";
    }

    private static IResult ServeAsset(string name, HttpResponse response)
    {
        var contentType = Path.GetExtension(name) switch
        {
            ".css" => "text/css; charset=utf-8",
            ".js" => "text/javascript; charset=utf-8",
            _ => null,
        };
        var stream = contentType is null ? null : Assembly.GetExecutingAssembly().GetManifestResourceStream($"portal/{name}");
        if (stream is null)
        {
            return TypedResults.NotFound();
        }

        response.Headers.CacheControl = "public, max-age=300";
        return TypedResults.Stream(stream, contentType);
    }
}
