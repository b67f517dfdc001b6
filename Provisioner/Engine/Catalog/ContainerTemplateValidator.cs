using Microsoft.Extensions.Options;

namespace Provisioner.Catalog;

/// <summary>Refuses to start with a container template that could not be filled in, or that would put a password on a command line.</summary>
public sealed class ContainerTemplateValidator : IValidateOptions<CatalogOptions>
{
    public ValidateOptionsResult Validate(string? name, CatalogOptions options)
    {
        var failures = new List<string>();
        foreach (var (productName, product) in options.Products)
        {
            if (product.Container is not { } template)
            {
                continue;
            }

            var prefix = $"Catalog:Products:{productName}";
            if (template.Port is < 1 or > 65535)
            {
                failures.Add($"{prefix}:Container:Port must be the port the server listens on in its container (1..65535).");
            }

            if (string.IsNullOrWhiteSpace(template.AccessControlEnvironmentVariable))
            {
                failures.Add($"{prefix}:Container:AccessControlEnvironmentVariable is required: the variable the container reads the instance's access control file from.");
            }

            if (!template.DataPath.StartsWith('/'))
            {
                failures.Add($"{prefix}:Container:DataPath must be an absolute path in the container (e.g. /data).");
            }

            if (template.StartupTimeoutSeconds <= 0)
            {
                failures.Add($"{prefix}:Container:StartupTimeoutSeconds must be positive.");
            }

            foreach (var (sizeName, size) in product.Sizes)
            {
                failures.AddRange(template.Command.Concat(template.Arguments)
                    .SelectMany(argument => ContainerArguments.Unknown(argument, template, size))
                    .Distinct(StringComparer.Ordinal)
                    .Select(unknown => unknown == "password"
                        ? $"{prefix}:Container: {{password}} is not allowed in a command line; the credentials arrive in Container:AccessControlEnvironmentVariable."
                        : $"{prefix}:Container (size '{sizeName}') refers to {{{unknown}}}, which is not defined: use {{port}}, {{dataDir}}, {{memoryMb}} or {{settings.NAME}}."));
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

/// <summary>
/// Registered by each cloud backend: every version of a product with a container template needs an image and every
/// size its CPU and disk, so a create never fails halfway for want of a catalog value. (Products without a template
/// are refused per request by the cloud backends, with the reason.)
/// </summary>
public sealed class CloudOfferingValidator : IValidateOptions<CatalogOptions>
{
    public ValidateOptionsResult Validate(string? name, CatalogOptions options)
    {
        var failures = new List<string>();
        foreach (var (productName, product) in options.Products.Where(product => product.Value.Container is not null))
        {
            var prefix = $"Catalog:Products:{productName}";
            failures.AddRange(product.Versions
                .Where(version => string.IsNullOrWhiteSpace(version.Value.Image))
                .Select(version => $"{prefix}:Versions:{version.Key}:Image is required for the cloud backends: set the container image with its tag (e.g. ghcr.io/microsoft/garnet:{version.Key})."));
            foreach (var (sizeName, size) in product.Sizes)
            {
                if (size.CpuMillicores <= 0)
                {
                    failures.Add($"{prefix}:Sizes:{sizeName}:CpuMillicores must be positive for the cloud backends (e.g. 250 for a quarter of a core).");
                }

                if (size.DiskGb <= 0)
                {
                    failures.Add($"{prefix}:Sizes:{sizeName}:DiskGb must be positive for the cloud backends: the size of the instance's persistent volume.");
                }
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
