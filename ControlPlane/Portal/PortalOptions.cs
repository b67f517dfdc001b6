using Microsoft.Extensions.Options;

namespace ControlPlane.Portal;

/// <summary>Section <c>Portal</c>: the web portal under <c>/portal</c>.</summary>
public sealed class PortalOptions
{
    public const string SectionName = "Portal";

    /// <summary>Embedded mode: the person who gets the first sign-in link, as platform admin.</summary>
    public string BootstrapAdminEmail { get; set; } = "admin@localhost";

    /// <summary>How long a confirmed password lets a person reveal credentials before it is asked for again.</summary>
    public int ReauthenticateAfterMinutes { get; set; } = 5;

    /// <summary>
    /// The address people reach the control plane at (e.g. <c>https://cloud.example.com</c>), for the links it hands
    /// out: sign-in links and the SSO redirect URI. Unset, they are built from the request's own scheme and host, which
    /// behind a proxy is the proxy's view unless forwarded headers are trusted.
    /// </summary>
    public string? PublicUrl { get; set; }

    /// <summary>An absolute address at <paramref name="path"/> (starting with /): under <see cref="PublicUrl"/> when set, else the request's own.</summary>
    public string Link(HttpRequest request, string path) =>
        PublicUrl is { Length: > 0 } publicUrl ? $"{publicUrl.TrimEnd('/')}{path}" : $"{request.Scheme}://{request.Host}{request.PathBase}{path}";
}

public sealed class PortalOptionsValidator : IValidateOptions<PortalOptions>
{
    public ValidateOptionsResult Validate(string? name, PortalOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.BootstrapAdminEmail) || !options.BootstrapAdminEmail.Contains('@', StringComparison.Ordinal))
        {
            failures.Add($"Portal:BootstrapAdminEmail must be an email address (it is '{options.BootstrapAdminEmail}'); set e.g. Portal__BootstrapAdminEmail=admin@localhost.");
        }

        if (options.ReauthenticateAfterMinutes is < 1 or > 60)
        {
            failures.Add($"Portal:ReauthenticateAfterMinutes must be between 1 and 60 (it is {options.ReauthenticateAfterMinutes}); set e.g. Portal__ReauthenticateAfterMinutes=5.");
        }

        if (options.PublicUrl is { Length: > 0 } publicUrl
            && !(Uri.TryCreate(publicUrl, UriKind.Absolute, out var uri) && uri.Scheme is "https" or "http" && uri.Query.Length == 0 && uri.Fragment.Length == 0))
        {
            failures.Add($"Portal:PublicUrl must be an absolute http(s) address without query or fragment (it is '{publicUrl}'); set e.g. Portal__PublicUrl=https://cloud.example.com.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
