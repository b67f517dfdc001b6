using System.Runtime.Versioning;
using System.Text.Json;
using System.Text.Json.Serialization;
using Provisioner.Deployments;

namespace Provisioner.Local;

/// <summary>
/// <c>deployment.json</c>: what is deployed for one instance. It is the Local backend's only memory, so a
/// control plane that restarts (even after kill -9) finds its instances, their ports and processes here.
/// </summary>
internal sealed record LocalInstanceRecord
{
    public required string InstanceId { get; init; }
    public required string Product { get; init; }
    public required string Version { get; init; }
    public required string Size { get; init; }
    public required int Port { get; init; }
    public required DeploymentGoal Goal { get; init; }
    public required long Generation { get; init; }
    public int? ProcessId { get; init; }

    /// <summary>Field 22 of /proc/&lt;pid&gt;/stat: tells our process from a later one that reuses its PID.</summary>
    public long? ProcessStartTime { get; init; }

    /// <summary>The program the process runs (its /proc/&lt;pid&gt;/exe); a process running anything else is never taken for it.</summary>
    public string? Executable { get; init; }

    /// <summary>
    /// Set just before a process is launched and cleared once its PID is recorded: a control plane that died in between
    /// finds it here, and only then looks through /proc for a process serving the data that nobody recorded.
    /// </summary>
    public bool LaunchPending { get; init; }

    /// <summary>When the current process was launched; a process that has not answered since its startup timeout is hung, not starting.</summary>
    public DateTimeOffset? LaunchedAt { get; init; }

    /// <summary>How many processes were launched for the instance over its life (any reason): a rise nobody asked for is a crash.</summary>
    public long ProcessStarts { get; init; }

    /// <summary>The restart count (<see cref="DeploymentSpec.Restarts"/>) last carried out.</summary>
    public long Restarts { get; init; }

    public DateTimeOffset UpdatedAt { get; init; }
}

/// <summary>The files of one instance under <see cref="LocalBackendOptions.InstancesDirectory"/>.</summary>
[SupportedOSPlatform("linux")]
internal sealed class LocalInstancePaths(string instancesDirectory, string instanceId)
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
    };

    private const UnixFileMode OwnerOnlyDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public string Root { get; } = Path.Combine(instancesDirectory, instanceId);
    public string Data => Path.Combine(Root, "data");
    public string Record => Path.Combine(Root, "deployment.json");
    public string Log => Path.Combine(Root, "process.log");

    /// <summary>Who may connect and with which password hashes (<see cref="LocalAccessControl"/>); passed as <c>{aclFile}</c>.</summary>
    public string AccessControl => Path.Combine(Root, "users.acl");

    /// <summary>The log of the <paramref name="runsAgo"/>-th run before the current one (1: the previous run).</summary>
    public string PreviousLog(int runsAgo = 1) => $"{Log}.{runsAgo}";

    /// <summary>Marks a deleted instance with its last generation, so a late, older command cannot bring it back.</summary>
    public string Tombstone => Path.Combine(instancesDirectory, ".removed", instanceId);

    public LocalInstanceRecord? ReadRecord() => ReadRecord(Record);

    public static LocalInstanceRecord? ReadRecord(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<LocalInstanceRecord>(File.ReadAllBytes(path), JsonOptions);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Replaces the record atomically: a crash leaves the old or the new file, never half of one.</summary>
    public void WriteRecord(LocalInstanceRecord record) =>
        ExclusiveFile.Replace(Record, stream => JsonSerializer.Serialize(stream, record, JsonOptions));

    /// <summary>
    /// With <paramref name="passableByInstances"/>, others may pass through the instances directory and the instance's
    /// (0711), not list them: an instance's user reaches its own data that way, while the records and logs beside it stay 0600.
    /// </summary>
    public void CreateDirectories(bool passableByInstances = false)
    {
        var mode = passableByInstances ? OwnerOnlyDirectory | UnixFileMode.OtherExecute : OwnerOnlyDirectory;
        foreach (var directory in new[] { instancesDirectory, Root })
        {
            Directory.CreateDirectory(directory, mode);
            if (passableByInstances)
            {
                File.SetUnixFileMode(directory, mode);
            }
        }

        Directory.CreateDirectory(Data, OwnerOnlyDirectory);
    }

    public long? ReadTombstone()
    {
        try
        {
            return long.Parse(File.ReadAllText(Tombstone), System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException or FormatException)
        {
            return null;
        }
    }

    public void WriteTombstone(long generation)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Tombstone)!, OwnerOnlyDirectory);
        ExclusiveFile.Replace(Tombstone, generation.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Every instance directory's record, for port allocation and shutdown.</summary>
    public static IEnumerable<LocalInstanceRecord> ReadAllRecords(string instancesDirectory)
    {
        if (!Directory.Exists(instancesDirectory))
        {
            yield break;
        }

        foreach (var directory in Directory.EnumerateDirectories(instancesDirectory))
        {
            if (Path.GetFileName(directory).StartsWith('.'))
            {
                continue;
            }

            LocalInstanceRecord? record;
            try
            {
                record = ReadRecord(Path.Combine(directory, "deployment.json"));
            }
            catch (JsonException)
            {
                record = null;
            }

            if (record is not null)
            {
                yield return record;
            }
        }
    }
}
