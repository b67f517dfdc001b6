using System.Text.Json;

namespace ControlPlane.Cli;

/// <summary>
/// Where the CLI finds the control plane and the key to use, saved by <c>controlplane login</c> in
/// <c>$XDG_CONFIG_HOME/controlplane/config.json</c> (else <c>~/.config/…</c>), readable by its owner only: it holds an
/// API key.
/// </summary>
public sealed record Profile(string? Url, string? ApiKey, string? Tenant)
{
    public static string DefaultPath(IReadOnlyDictionary<string, string?> environment) =>
        Path.Combine(
            environment.GetValueOrDefault("XDG_CONFIG_HOME") is { Length: > 0 } config
                ? config
                : Path.Combine(environment.GetValueOrDefault("HOME") ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config"),
            "controlplane",
            "config.json");

    public static Profile Load(string path)
    {
        if (!File.Exists(path))
        {
            return new Profile(null, null, null);
        }

        if ((File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.OtherRead | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
        {
            throw new CliException($"{path} holds an API key and others can read it. Run: chmod 600 {path}");
        }

        return JsonSerializer.Deserialize<Profile>(File.ReadAllText(path), JsonOptions.Web) ?? new Profile(null, null, null);
    }

    /// <summary>Writes to a new file created 0600 beside the old one, then moves it over, so no reader ever sees half of it.</summary>
    public void Save(string path)
    {
        var directory = Path.GetDirectoryName(path)!;
        Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var temporary = Path.Combine(directory, $".config.{Guid.NewGuid():N}.tmp");
        using (var stream = new FileStream(temporary, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        {
            JsonSerializer.Serialize(stream, this, JsonOptions.Indented);
        }

        File.Move(temporary, path, overwrite: true);
    }
}

/// <summary>A mistake the person can fix, said in words; exit code 2.</summary>
public sealed class CliException(string message) : Exception(message);
