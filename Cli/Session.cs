using System.CommandLine;
using System.Text.Json.Nodes;

namespace ControlPlane.Cli;

/// <summary>The options every command takes.</summary>
internal static class GlobalOptions
{
    public const string DefaultUrl = "http://127.0.0.1:5080";

    public static readonly Option<string?> Url = new("--url")
    {
        Description = $"The control plane's address (else CONTROLPLANE_URL, else the saved login, else {DefaultUrl})",
        Recursive = true,
    };

    public static readonly Option<FileInfo?> ApiKeyFile = new("--api-key-file")
    {
        Description = "Read the API key from this file (else CONTROLPLANE_API_KEY, else the saved login). Keys are never taken as arguments: those show in ps",
        Recursive = true,
    };

    public static readonly Option<string?> Tenant = new("--tenant", "-t")
    {
        Description = "The tenant id (else CONTROLPLANE_TENANT, else the saved login, else the key's only tenant)",
        Recursive = true,
    };

    public static readonly Option<OutputFormat> Output = new("--output", "-o")
    {
        Description = "table for people, json for programs (the API's own JSON)",
        Recursive = true,
        DefaultValueFactory = _ => OutputFormat.Table,
    };

    public static IEnumerable<Option> All => [Url, ApiKeyFile, Tenant, Output];
}

/// <summary>
/// One command's connection to the control plane: its address and key, resolved once from the options, the environment
/// and the saved login (in that order), and the API client over them.
/// </summary>
internal sealed class Session : IDisposable
{
    private readonly ParseResult _parsed;
    private readonly CliEnvironment _environment;
    private readonly Lazy<ApiClient> _api;
    private string? _tenant;

    private Session(ParseResult parsed, CliEnvironment environment, Output output, Profile profile, string profilePath, CancellationToken cancellationToken)
    {
        _parsed = parsed;
        _environment = environment;
        Output = output;
        Profile = profile;
        ProfilePath = profilePath;
        CancellationToken = cancellationToken;
        Url = parsed.GetValue(GlobalOptions.Url) ?? environment.Variables.GetValueOrDefault("CONTROLPLANE_URL") ?? profile.Url ?? GlobalOptions.DefaultUrl;
        _api = new Lazy<ApiClient>(() => new ApiClient(ParseUrl(Url), ApiKey()));
    }

    public string Url { get; }

    public Output Output { get; }

    public Profile Profile { get; }

    public string ProfilePath { get; }

    public CancellationToken CancellationToken { get; }

    public ApiClient Api => _api.Value;

    public CliEnvironment Environment => _environment;

    public static Session Open(ParseResult parsed, CliEnvironment environment, Output output, CancellationToken cancellationToken)
    {
        var path = environment.Variables.GetValueOrDefault("CONTROLPLANE_CONFIG") is { Length: > 0 } configured ? configured : Profile.DefaultPath(environment.Variables);
        return new Session(parsed, environment, output, Profile.Load(path), path, cancellationToken);
    }

    public T Value<T>(Option<T> option) => _parsed.GetValue(option)!;

    public T Value<T>(Argument<T> argument) => _parsed.GetValue(argument)!;

    /// <summary>The tenant the command acts in; asks the API which tenants the key belongs to only when nothing names one.</summary>
    public async Task<string> TenantAsync()
    {
        if (_tenant is not null)
        {
            return _tenant;
        }

        _tenant = _parsed.GetValue(GlobalOptions.Tenant) ?? _environment.Variables.GetValueOrDefault("CONTROLPLANE_TENANT") ?? Profile.Tenant;
        if (_tenant is null)
        {
            var me = await Api.GetAsync("/api/v1/me", CancellationToken);
            var memberships = (me?["memberships"] as JsonArray ?? []).OfType<JsonNode>().Select(membership => membership.Text("tenantId")).OfType<string>().ToList();
            _tenant = memberships.Count == 1
                ? memberships[0]
                : throw new CliException(memberships.Count == 0
                    ? "Which tenant? Add --tenant <id> (list them: controlplane tenants list)."
                    : $"This key is in {memberships.Count} tenants; add --tenant <id>: {string.Join(", ", memberships)}.");
        }

        return _tenant;
    }

    /// <summary>The first item of a paged list that <paramref name="matches"/>, reading pages until one does; null when none does.</summary>
    public async Task<JsonNode?> FindAsync(string listPath, Func<JsonNode, bool> matches)
    {
        string? pageToken = null;
        do
        {
            var separator = listPath.Contains('?', StringComparison.Ordinal) ? '&' : '?';
            var page = await Api.GetAsync($"{listPath}{separator}pageSize=100" + (pageToken is null ? "" : $"&pageToken={Uri.EscapeDataString(pageToken)}"), CancellationToken);
            if ((page?["items"] as JsonArray ?? []).OfType<JsonNode>().FirstOrDefault(matches) is { } found)
            {
                return found;
            }

            pageToken = page?.Text("nextPageToken");
        }
        while (pageToken is not null);
        return null;
    }

    public async Task<string> TenantPathAsync() => $"/api/v1/tenants/{Uri.EscapeDataString(await TenantAsync())}";

    public void Dispose()
    {
        if (_api.IsValueCreated)
        {
            _api.Value.Dispose();
        }
    }

    private string ApiKey()
    {
        if (_parsed.GetValue(GlobalOptions.ApiKeyFile) is { } file)
        {
            return ReadKeyFile(file.FullName);
        }

        return _environment.Variables.GetValueOrDefault("CONTROLPLANE_API_KEY") is { Length: > 0 } key
            ? key.Trim()
            : Profile.ApiKey ?? throw new CliException(
                "No API key. Save one with: controlplane login --api-key-file <file> (or pipe it to: controlplane login --api-key-stdin), " +
                "or set CONTROLPLANE_API_KEY. On the machine running the control plane, the platform admin's key is in its data directory (admin-api-key).");
    }

    public static string ReadKeyFile(string path)
    {
        if (!File.Exists(path))
        {
            throw new CliException($"{path} does not exist.");
        }

        var key = File.ReadAllText(path).Trim();
        return key.Length > 0 ? key : throw new CliException($"{path} is empty.");
    }

    private static Uri ParseUrl(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
            ? uri
            : throw new CliException($"'{url}' is not an http(s) address, e.g. {GlobalOptions.DefaultUrl}.");
}
