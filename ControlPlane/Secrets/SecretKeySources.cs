using System.Text.RegularExpressions;
using ControlPlane.Hosting;
using Dapr;
using Dapr.Client;

namespace ControlPlane.Secrets;

/// <summary>Where the key-encryption keys come from.</summary>
public interface ISecretKeySource
{
    /// <exception cref="InvalidOperationException">The keys cannot be read; the message says what to fix.</exception>
    Task<SecretKeySet> ReadAsync(CancellationToken cancellationToken);
}

/// <summary>
/// Embedded mode: <c>&lt;dataDir&gt;/secret-keys</c>, created with one random key on the first start, mode 0600. Its mode is
/// checked at every start (<see cref="DataDirectoryPermissions"/>) and again here before it is read. Rotate by adding a
/// line <c>v&lt;next&gt;:&lt;base64 of 32 bytes&gt;</c> and restarting; see README.
/// </summary>
public sealed class SecretKeyFile(string path) : ISecretKeySource
{
    public const string FileName = "secret-keys";

    private const UnixFileMode NotOwner = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    public string Path => path;

    /// <summary>Creates the file with a new key set when there is none; called once at start-up.</summary>
    public void EnsureCreated()
    {
        if (File.Exists(path))
        {
            return;
        }

        PrivateFile.WriteAsync(path, SecretKeySet.CreateNew().Format().TrimEnd('\n'), CancellationToken.None).GetAwaiter().GetResult();
    }

    public async Task<SecretKeySet> ReadAsync(CancellationToken cancellationToken)
    {
        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & NotOwner) != 0)
        {
            throw new InvalidOperationException($"{path} may be read by other users; `chmod 600 {path}` (and rotate the keys if others could read it).");
        }

        try
        {
            return SecretKeySet.Parse(await File.ReadAllTextAsync(path, cancellationToken));
        }
        catch (FormatException exception)
        {
            throw new InvalidOperationException($"{path} is not a key set: {exception.Message}", exception);
        }
    }

    /// <summary>Adds a new key version to the file (the next start wraps new secrets with it and re-wraps the old ones).</summary>
    public async Task<int> AddVersionAsync(CancellationToken cancellationToken)
    {
        var rotated = (await ReadAsync(cancellationToken)).WithNewVersion();
        await PrivateFile.WriteAsync(path, rotated.Format().TrimEnd('\n'), cancellationToken);
        return rotated.CurrentVersion;
    }
}

/// <summary>
/// Cluster mode: a secret in a Dapr secret store, read through the sidecar, so the keys live in the platform's secret
/// store and every silo has the same ones. The secret's value is a key set's text; a store that keeps one entry per
/// version (a Kubernetes secret with keys <c>v1</c>, <c>v2</c>) is read as such.
/// </summary>
public sealed partial class DaprSecretKeySource(DaprClient dapr, string storeName, string secretName) : ISecretKeySource
{
    public async Task<SecretKeySet> ReadAsync(CancellationToken cancellationToken)
    {
        Dictionary<string, string> entries;
        try
        {
            entries = await dapr.GetSecretAsync(storeName, secretName, cancellationToken: cancellationToken);
        }
        catch (DaprException exception)
        {
            throw new InvalidOperationException(
                $"Could not read secret '{secretName}' from Dapr secret store '{storeName}' ({exception.InnerException?.Message ?? exception.Message}). " +
                "It holds the keys that encrypt instance passwords at rest: create it (see README, \"Secrets at rest\").", exception);
        }

        var text = string.Join(' ', entries.Select(entry => VersionName().IsMatch(entry.Key) && !entry.Value.Contains(':', StringComparison.Ordinal)
            ? $"{entry.Key}:{entry.Value.Trim()}"
            : entry.Value));
        try
        {
            return SecretKeySet.Parse(text);
        }
        catch (FormatException exception)
        {
            throw new InvalidOperationException($"Secret '{secretName}' in Dapr secret store '{storeName}' is not a key set: {exception.Message}", exception);
        }
    }

    [GeneratedRegex("^v[0-9]+$")]
    private static partial Regex VersionName();
}
