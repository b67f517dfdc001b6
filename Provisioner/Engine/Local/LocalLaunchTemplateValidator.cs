using Microsoft.Extensions.Options;
using Provisioner.Catalog;

namespace Provisioner.Local;

/// <summary>Refuses to start with a launch template the Local backend could not fill in, or one that would put a password on a command line or in the environment.</summary>
public sealed class LocalLaunchTemplateValidator : IValidateOptions<CatalogOptions>
{
    public ValidateOptionsResult Validate(string? name, CatalogOptions options)
    {
        var failures = new List<string>();
        foreach (var (productName, product) in options.Products)
        {
            if (product.Local is not { } template)
            {
                continue;
            }

            if (string.IsNullOrWhiteSpace(template.Executable))
            {
                failures.Add($"Catalog product '{productName}': Local:Executable is required.");
            }

            if (template.StartupTimeoutSeconds <= 0)
            {
                failures.Add($"Catalog product '{productName}': Local:StartupTimeoutSeconds must be positive.");
            }

            if (!template.Arguments.Contains("{dataDir}", StringComparer.Ordinal))
            {
                // The backend recognises an instance's process by this argument in /proc/<pid>/cmdline.
                failures.Add($"Catalog product '{productName}': Local:Arguments must pass {{dataDir}} as an argument of its own.");
            }

            foreach (var (sizeName, size) in product.Sizes)
            {
                var placeholders = LaunchCommand.Placeholders("", 0, "", "", "", size);
                var unknownOutsideSecrets = template.Arguments.Prepend(template.Executable).Concat(template.Environment.Values)
                    .SelectMany(argument => LaunchCommand.UnknownPlaceholders(argument, placeholders))
                    .Distinct(StringComparer.Ordinal);
                foreach (var unknown in unknownOutsideSecrets)
                {
                    failures.Add(unknown == "password"
                        ? $"Catalog product '{productName}': {{password}} is only allowed in Local:Secrets (the process's standard input), never on a command line or in the environment, which /proc shows."
                        : $"Catalog product '{productName}' size '{sizeName}': the launch template refers to {{{unknown}}}, which is not defined.");
                }

                var tlsPlaceholders = new Dictionary<string, string>(placeholders, StringComparer.Ordinal) { [LocalTls.CertificatePlaceholder] = "", [LocalTls.KeyPlaceholder] = "" };
                failures.AddRange(template.TlsArguments
                    .SelectMany(argument => LaunchCommand.UnknownPlaceholders(argument, tlsPlaceholders))
                    .Distinct(StringComparer.Ordinal)
                    .Select(unknown => $"Catalog product '{productName}' size '{sizeName}': Local:TlsArguments refers to {{{unknown}}}, which is not defined."));

                var secretPlaceholders = new Dictionary<string, string>(placeholders, StringComparer.Ordinal) { ["password"] = "" };
                failures.AddRange(template.Secrets.Values
                    .SelectMany(value => LaunchCommand.UnknownPlaceholders(value, secretPlaceholders))
                    .Distinct(StringComparer.Ordinal)
                    .Select(unknown => $"Catalog product '{productName}' size '{sizeName}': Local:Secrets refers to {{{unknown}}}, which is not defined."));
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
