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

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
