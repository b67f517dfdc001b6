using System.Globalization;
using System.Text.RegularExpressions;
using Provisioner.Catalog;
using Provisioner.Deployments;

namespace Provisioner.Local;

/// <summary>A launch template with its placeholders filled in for one instance.</summary>
/// <param name="Secrets">The JSON object the process reads from its standard input; never on its command line or in its environment.</param>
internal sealed partial record LaunchCommand(
    string Executable, IReadOnlyList<string> Arguments, IReadOnlyDictionary<string, string> Environment, Secret Secrets)
{
    /// <summary>The values a template may refer to; <c>{password}</c> is added for the secrets only.</summary>
    /// <param name="accessControlFile">The instance's access control file (<see cref="LocalAccessControl"/>), as <c>{aclFile}</c>.</param>
    public static IReadOnlyDictionary<string, string> Placeholders(
        string home, int port, string bindAddress, string dataDirectory, string accessControlFile, ProductSize size)
    {
        var memoryBytes = (long)size.MemoryMb * 1024 * 1024;
        var values = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["home"] = home,
            ["port"] = port.ToString(CultureInfo.InvariantCulture),
            ["bindAddress"] = bindAddress,
            ["dataDir"] = dataDirectory,
            ["aclFile"] = accessControlFile,
            ["memoryMb"] = size.MemoryMb.ToString(CultureInfo.InvariantCulture),
            ["memoryBytes"] = memoryBytes.ToString(CultureInfo.InvariantCulture),
            // The .NET runtime reads GC limits as hexadecimal.
            ["memoryBytesHex"] = "0x" + memoryBytes.ToString("x", CultureInfo.InvariantCulture),
        };
        foreach (var (name, value) in size.Settings)
        {
            values["settings." + name] = value;
        }

        return values;
    }

    public static LaunchCommand Render(
        LocalLaunchTemplate template, IReadOnlyDictionary<string, string> placeholders, Secret password)
    {
        var secretValues = new Dictionary<string, string>(placeholders, StringComparer.Ordinal)
        {
            ["password"] = password.Value,
        };
        var secrets = template.Secrets.ToDictionary(pair => pair.Key, pair => Fill(pair.Value, secretValues), StringComparer.Ordinal);
        return new LaunchCommand(
            Fill(template.Executable, placeholders),
            [.. template.Arguments.Select(argument => Fill(argument, placeholders))],
            template.Environment.ToDictionary(pair => pair.Key, pair => Fill(pair.Value, placeholders), StringComparer.Ordinal),
            Secret.Of(System.Text.Json.JsonSerializer.Serialize(secrets)));
    }

    /// <summary>The placeholders in <paramref name="text"/> that <paramref name="placeholders"/> does not define.</summary>
    public static IEnumerable<string> UnknownPlaceholders(string text, IReadOnlyDictionary<string, string> placeholders) =>
        PlaceholderPattern().Matches(text).Select(match => match.Groups[1].Value).Where(name => !placeholders.ContainsKey(name));

    public static string Fill(string text, IReadOnlyDictionary<string, string> values) =>
        PlaceholderPattern().Replace(text, match => values.TryGetValue(match.Groups[1].Value, out var value)
            ? value
            : throw new DeploymentFailedException(
                "catalog-invalid",
                $"The Local launch template refers to {{{match.Groups[1].Value}}}, which is not defined. Fix the catalog."));

    [GeneratedRegex(@"\{([A-Za-z][A-Za-z0-9_.]*)\}")]
    private static partial Regex PlaceholderPattern();
}
