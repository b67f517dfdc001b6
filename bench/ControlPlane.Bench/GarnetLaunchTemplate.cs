using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ControlPlane.Bench;

/// <summary>A program, its arguments and its whole environment, ready to start.</summary>
internal sealed record LaunchCommand(string Executable, IReadOnlyList<string> Arguments, IReadOnlyDictionary<string, string> Environment);

/// <summary>
/// The catalog's Local launch template for Garnet, read from the control plane's own build output, so the
/// baseline starts exactly the program, arguments and environment the Local backend would for one size.
/// </summary>
internal sealed partial class GarnetLaunchTemplate
{
    private const string Product = "garnet";

    /// <summary>What an instance inherits from the control plane's environment; everything else comes from the template.</summary>
    private static readonly string[] s_inheritedVariables = ["PATH", "HOME", "TMPDIR", "LANG", "DOTNET_ROOT"];

    private readonly JsonObject _local;
    private readonly JsonObject _size;
    private readonly string _home;

    private GarnetLaunchTemplate(JsonObject local, JsonObject size, string home, string version)
    {
        _local = local;
        _size = size;
        _home = home;
        Version = version;
    }

    public string Version { get; }

    /// <summary>Reads <c>catalog.json</c> beside <c>ControlPlane.dll</c>; fails when the size or the Local template is missing.</summary>
    public static GarnetLaunchTemplate Load(string controlPlaneDirectory, string size)
    {
        var catalogFile = Path.Combine(controlPlaneDirectory, "catalog.json");
        var product = JsonNode.Parse(File.ReadAllText(catalogFile))?["Catalog"]?["Products"]?[Product] as JsonObject
            ?? throw new BenchmarkFailedException($"{catalogFile} has no product '{Product}'.");
        var version = (string?)product["DefaultVersion"] ?? throw new BenchmarkFailedException($"{catalogFile}: {Product} has no DefaultVersion.");
        var home = (string?)product["Versions"]?[version]?["Home"] ?? throw new BenchmarkFailedException($"{catalogFile}: {Product} {version} has no Home.");
        var sizes = product["Sizes"] as JsonObject ?? throw new BenchmarkFailedException($"{catalogFile}: {Product} has no Sizes.");
        var sizeDefinition = sizes[size] as JsonObject
            ?? throw new BenchmarkFailedException($"Size '{size}' is not in the catalog. Available: {string.Join(", ", sizes.Select(pair => pair.Key))}.");
        var local = product["Local"] as JsonObject ?? throw new BenchmarkFailedException($"{catalogFile}: {Product} has no Local launch template.");
        return new GarnetLaunchTemplate(local, sizeDefinition, Path.GetFullPath(Path.Combine(controlPlaneDirectory, home)), version);
    }

    /// <summary>The .NET host this program runs on, as the Local backend resolves <c>dotnet</c> for itself.</summary>
    public static string DotnetHost()
    {
        var runtimeHost = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..", "dotnet"));
        return File.Exists(runtimeHost) ? runtimeHost : FromPath("dotnet");
    }

    /// <summary>
    /// The command for one instance on <paramref name="port"/> keeping its data in <paramref name="dataDirectory"/>, with an
    /// access list beside it (as the Local backend writes <c>users.acl</c>) that lets <c>default</c> in with <paramref name="password"/>.
    /// </summary>
    public LaunchCommand Render(int port, string dataDirectory, string password)
    {
        var accessControlFile = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(dataDirectory))!, "users.acl");
        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(password)));
        File.WriteAllText(accessControlFile, $"user default on #{hash} ~* +@all -@admin -info\n");
        File.SetUnixFileMode(accessControlFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var memoryBytes = (long)_size["MemoryMb"]!.GetValue<int>() * 1024 * 1024;
        var placeholders = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["home"] = _home,
            ["port"] = port.ToString(CultureInfo.InvariantCulture),
            ["bindAddress"] = "127.0.0.1",
            ["aclFile"] = accessControlFile,
            ["dataDir"] = dataDirectory,
            ["memoryMb"] = (memoryBytes / 1024 / 1024).ToString(CultureInfo.InvariantCulture),
            ["memoryBytes"] = memoryBytes.ToString(CultureInfo.InvariantCulture),
            ["memoryBytesHex"] = "0x" + memoryBytes.ToString("x", CultureInfo.InvariantCulture),
        };
        foreach (var (name, value) in _size["Settings"]?.AsObject() ?? [])
        {
            placeholders["settings." + name] = (string)value!;
        }

        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in s_inheritedVariables)
        {
            if (System.Environment.GetEnvironmentVariable(name) is { } value)
            {
                environment[name] = value;
            }
        }

        var withPassword = new Dictionary<string, string>(placeholders, StringComparer.Ordinal) { ["password"] = password };
        foreach (var (name, value) in _local["Environment"]?.AsObject() ?? [])
        {
            environment[name] = Fill((string)value!, withPassword);
        }

        var executable = Fill((string)_local["Executable"]!, placeholders);
        return new LaunchCommand(
            executable == "dotnet" ? DotnetHost() : Path.IsPathRooted(executable) ? executable : FromPath(executable),
            [.. _local["Arguments"]!.AsArray().Select(argument => Fill((string)argument!, placeholders))],
            environment);
    }

    private static string Fill(string text, Dictionary<string, string> values) =>
        Placeholder().Replace(text, match => values.TryGetValue(match.Groups[1].Value, out var value)
            ? value
            : throw new BenchmarkFailedException($"The Local launch template refers to {{{match.Groups[1].Value}}}, which the benchmark does not know."));

    private static string FromPath(string executable) =>
        (System.Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, executable))
            .FirstOrDefault(File.Exists)
        ?? throw new BenchmarkFailedException($"'{executable}' is not on PATH.");

    [GeneratedRegex(@"\{([A-Za-z][A-Za-z0-9_.]*)\}")]
    private static partial Regex Placeholder();
}
