using System.Globalization;
using System.Text.RegularExpressions;
using Provisioner.Deployments;

namespace Provisioner.Catalog;

/// <summary>
/// How a cloud backend runs a product's container. <see cref="Arguments"/> may use <c>{port}</c>, <c>{dataDir}</c>
/// (the mount path of the instance's volume), <c>{memoryMb}</c> and <c>{settings.NAME}</c>. No password appears here: the
/// instance's access control file (<see cref="InstanceAccess"/>, password hashes only) reaches the container as
/// <see cref="AccessControlEnvironmentVariable"/>, from the platform's secret, and <see cref="Command"/> writes it where
/// the arguments' <c>--acl-file</c> points.
/// </summary>
public sealed class ContainerTemplate
{
    /// <summary>The port the server listens on inside the container, and the one customers connect to.</summary>
    public int Port { get; set; }
    /// <summary>Replaces the image's entrypoint when given (e.g. to write the access control file from the environment first).</summary>
    public List<string> Command { get; set; } = [];
    public List<string> Arguments { get; set; } = [];
    public string AccessControlEnvironmentVariable { get; set; } = "";
    /// <summary>Where the instance's persistent volume is mounted.</summary>
    public string DataPath { get; set; } = "/data";
    /// <summary>The non-root user the image runs as; the volume is made writable for it.</summary>
    public long RunAsUser { get; set; } = 1000;
    /// <summary>How long a new container may take (image pull included) to answer an authenticated PING.</summary>
    public int StartupTimeoutSeconds { get; set; } = 300;
}

/// <summary>A container template's arguments filled in for one offering.</summary>
public static partial class ContainerArguments
{
    public static IReadOnlyList<string> Render(CatalogOffering offering)
    {
        var template = offering.Definition.Container
            ?? throw new DeploymentFailedException("backend-unsupported", $"{offering.Definition.DisplayName} has no Container template in the catalog.");
        var values = Placeholders(template, offering.SizeDefinition);
        return [.. template.Arguments.Select(argument => PlaceholderPattern().Replace(argument, match => values.TryGetValue(match.Groups[1].Value, out var value)
            ? value
            : throw new DeploymentFailedException(
                "catalog-invalid",
                $"Catalog product '{offering.Product}': Container:Arguments refers to {{{match.Groups[1].Value}}}, which is not defined. Fix the catalog.")))];
    }

    /// <summary>The placeholders <paramref name="argument"/> uses that a container template does not define.</summary>
    public static IEnumerable<string> Unknown(string argument, ContainerTemplate template, ProductSize size)
    {
        var values = Placeholders(template, size);
        return PlaceholderPattern().Matches(argument).Select(match => match.Groups[1].Value).Where(name => !values.ContainsKey(name));
    }

    private static Dictionary<string, string> Placeholders(ContainerTemplate template, ProductSize size)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["port"] = template.Port.ToString(CultureInfo.InvariantCulture),
            ["dataDir"] = template.DataPath,
            ["memoryMb"] = size.MemoryMb.ToString(CultureInfo.InvariantCulture),
        };
        foreach (var (name, value) in size.Settings)
        {
            values["settings." + name] = value;
        }

        return values;
    }

    [GeneratedRegex(@"\{([A-Za-z][A-Za-z0-9_.]*)\}")]
    private static partial Regex PlaceholderPattern();
}
