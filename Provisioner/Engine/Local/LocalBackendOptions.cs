using System.Net;
using Microsoft.Extensions.Options;

namespace Provisioner.Local;

/// <summary>How the Local backend runs hosted instances as OS processes on this machine (section <c>Provisioner:Local</c>).</summary>
public sealed class LocalBackendOptions
{
    public const string SectionName = "Provisioner:Local";

    /// <summary>Where each instance gets <c>&lt;id&gt;/</c> with its record, data and log; the control plane uses <c>&lt;dataDir&gt;/instances</c>.</summary>
    public string InstancesDirectory { get; set; } = "";

    /// <summary>The address instances listen on; loopback keeps them off the network.</summary>
    public string BindAddress { get; set; } = "127.0.0.1";

    /// <summary>The range instances' ports come from. A port stays with its instance until the instance is deleted.</summary>
    public int FirstPort { get; set; } = 21000;

    public int LastPort { get; set; } = 21999;

    /// <summary>How long a process has to exit after SIGTERM before it gets SIGKILL.</summary>
    public TimeSpan StopTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Whether stopping the control plane also stops every instance. Off by default: instances are the
    /// customers' data plane and keep serving while the control plane restarts, which adopts them again.
    /// </summary>
    public bool StopInstancesOnShutdown { get; set; }

    /// <summary>The size at which an instance's process log is cut; the previous part is kept beside it.</summary>
    public long MaxLogBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>How many earlier runs' logs are kept beside the current one (<c>process.log.1</c> … <c>.N</c>), so a crash loop keeps its evidence.</summary>
    public int KeptLogs { get; set; } = 5;

    /// <summary>
    /// The host name or address customers connect to, when it is not <see cref="BindAddress"/> (e.g. the machine's DNS
    /// name when instances bind to a routable address). The platform's own probes always use <see cref="BindAddress"/>.
    /// </summary>
    public string? AdvertisedHost { get; set; }

    /// <summary>
    /// Whether each instance's process runs under an OS user of its own, with resource limits and a disk of the
    /// catalog size's DiskGb. <see cref="LocalIsolationMode.Auto"/> does so when the control plane runs as root and
    /// says at start-up when it cannot; <see cref="LocalIsolationMode.Off"/> runs instances as the control plane's user.
    /// </summary>
    public LocalIsolationMode Isolation { get; set; } = LocalIsolationMode.Auto;

    /// <summary>The user ids instances' users are created with (useradd), one per instance, given back when it is deleted.</summary>
    public int FirstUserId { get; set; } = 2_000_000;

    public int LastUserId { get; set; } = 2_099_999;

    /// <summary>RLIMIT_NOFILE of an isolated instance's process: its connections and files.</summary>
    public int MaxOpenFiles { get; set; } = 4096;

    /// <summary>RLIMIT_NPROC of an isolated instance's user: processes and threads (a .NET server runs a few dozen).</summary>
    public int MaxProcesses { get; set; } = 512;
}

public enum LocalIsolationMode
{
    Auto,
    Off,
}

public sealed class LocalBackendOptionsValidator : IValidateOptions<LocalBackendOptions>
{
    public ValidateOptionsResult Validate(string? name, LocalBackendOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.InstancesDirectory))
        {
            failures.Add($"{LocalBackendOptions.SectionName}:InstancesDirectory is required: the directory that holds hosted instances' data.");
        }

        if (!IPAddress.TryParse(options.BindAddress, out _))
        {
            failures.Add($"{LocalBackendOptions.SectionName}:BindAddress '{options.BindAddress}' is not an IP address.");
        }

        if (options.FirstPort is < 1024 or > 65535 || options.LastPort is < 1024 or > 65535 || options.FirstPort > options.LastPort)
        {
            failures.Add($"{LocalBackendOptions.SectionName}:FirstPort..LastPort ({options.FirstPort}..{options.LastPort}) must be a range within 1024..65535.");
        }

        if (options.StopTimeout <= TimeSpan.Zero)
        {
            failures.Add($"{LocalBackendOptions.SectionName}:StopTimeout must be positive.");
        }

        if (options.MaxLogBytes < 64 * 1024)
        {
            failures.Add($"{LocalBackendOptions.SectionName}:MaxLogBytes must be at least 64 KiB.");
        }

        if (options.KeptLogs is < 1 or > 100)
        {
            failures.Add($"{LocalBackendOptions.SectionName}:KeptLogs must be between 1 and 100 (it is {options.KeptLogs}).");
        }

        if (options.AdvertisedHost is { } host && Uri.CheckHostName(host) == UriHostNameType.Unknown)
        {
            failures.Add($"{LocalBackendOptions.SectionName}:AdvertisedHost '{host}' is not a host name or an IP address.");
        }

        if (options.FirstUserId is < 1000 or > int.MaxValue - 1 || options.LastUserId < options.FirstUserId || options.LastUserId > int.MaxValue - 1)
        {
            failures.Add(
                $"{LocalBackendOptions.SectionName}:FirstUserId..LastUserId ({options.FirstUserId}..{options.LastUserId}) must be a range of user ids " +
                "from 1000 up, used by nothing else on this machine (the default 2000000..2099999 is far above people's and services' ids).");
        }

        if (options.MaxOpenFiles < 256 || options.MaxProcesses < 64)
        {
            failures.Add($"{LocalBackendOptions.SectionName}:MaxOpenFiles must be at least 256 and MaxProcesses at least 64: a server needs its connections and threads.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
