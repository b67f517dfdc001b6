using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.Versioning;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Provisioner.Catalog;
using Provisioner.Deployments;
using Provisioner.Health;

namespace Provisioner.Local;

/// <summary>
/// Runs each hosted instance as an OS process on this machine: its own session, port, data directory,
/// password and memory cap. Everything it knows lives in each instance's <c>deployment.json</c>, so a new
/// backend (a restarted control plane) adopts running instances instead of starting them twice. This file plans
/// and observes; <c>LocalBackend.Steps.cs</c> carries the steps out.
/// </summary>
/// <remarks>
/// The memory cap is Garnet's own memory options per size plus <c>DOTNET_GCHeapHardLimit</c> from the
/// size's MemoryMb (Garnet keeps its log pages on the GC heap). cgroups would be the stronger fence but
/// are not usable on every machine this runs on (v1, sandboxed).
/// </remarks>
[SupportedOSPlatform("linux")]
public sealed partial class LocalBackend(
    ProductCatalog catalog,
    IOptions<LocalBackendOptions> options,
    LocalIsolation isolation,
    TimeProvider time,
    ILogger<LocalBackend> logger) : IDeploymentBackend, IDisposable
{
    public const string BackendName = "local";

    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);

    private readonly LocalPortAllocator _ports = new(options);

    private readonly LocalTls _tls = new(options);

    // Processes this backend started, only to report their exit code: instances started by an earlier
    // control plane are not our children and are tracked by PID and start time instead.
    private readonly ConcurrentDictionary<string, Process> _children = new(StringComparer.Ordinal);

    public string Name => BackendName;

    private LocalBackendOptions Settings => options.Value;

    public async Task<DeploymentPlan> PlanAsync(DeploymentSpec desired, CancellationToken cancellationToken)
    {
        var now = Inspect(desired);
        if (DeploymentGenerations.IsSuperseded(desired, new[] { now.Record?.Generation, now.Paths.ReadTombstone() }.Max(), logger))
        {
            return DeploymentPlan.UpToDate;
        }

        return desired.Goal switch
        {
            DeploymentGoal.Running => await PlanRunningAsync(desired, now, cancellationToken),
            DeploymentGoal.Stopped => PlanStopped(desired, now),
            DeploymentGoal.Absent => PlanAbsent(desired, now),
            _ => throw new DeploymentFailedException("invalid-goal", $"Unknown deployment goal {desired.Goal}."),
        };
    }

    public async Task<ObservedDeployment> ObserveAsync(DeploymentSpec desired, CancellationToken cancellationToken)
    {
        var now = Inspect(desired);
        if (now.Record is not { } record)
        {
            return ObservedDeployment.Absent;
        }

        InstanceLogFile.Bound(now.Paths, Settings.MaxLogBytes);
        var ping = now.Process is null ? null : await PingAsync(record, desired, cancellationToken);
        return Observation(now, ping);
    }

    /// <summary>Stops every instance's process, keeping data, ports and goals: the next reconcile starts them again.</summary>
    public async Task StopAllAsync(CancellationToken cancellationToken)
    {
        var running = LocalInstancePaths.ReadAllRecords(Settings.InstancesDirectory)
            .Select(record => Inspect(record.InstanceId, record.Executable))
            .Where(now => now.Process is not null)
            .ToList();
        logger.LogInformation("Stopping {Count} local instances because the control plane shuts down", running.Count);
        await Task.WhenAll(running.Select(now =>
            LocalProcesses.TerminateAsync(now.Process!, now.Paths.Data, Settings.StopTimeout, cancellationToken)));
    }

    public void Dispose()
    {
        foreach (var child in _children.Values)
        {
            child.Dispose();
        }

        _children.Clear();
    }

    private async Task<DeploymentPlan> PlanRunningAsync(DeploymentSpec desired, Inspection now, CancellationToken cancellationToken)
    {
        var offering = Resolve(desired);
        var steps = new List<DeploymentStep>();
        string? drift = null;
        var process = now.Process;
        if (process is { Recorded: false })
        {
            drift = DescribeUnrecorded(offering.Definition.DisplayName, process);
            steps.Add(StopStep(desired));
            process = null;
        }

        if (now.Record is not { } record || !Directory.Exists(now.Paths.Data))
        {
            if (now.Record is not null)
            {
                drift ??= $"The data directory {now.Paths.Data} is missing.";
            }

            EnsureInstalled(offering);
            steps.AddRange([PrepareStep(desired), StartStep(desired, offering), WaitStep(desired, offering)]);
            return new DeploymentPlan(steps, drift);
        }

        if (process is null)
        {
            if (record is { Goal: DeploymentGoal.Running, ProcessId: { } processId })
            {
                // The log is still the crashed run's: its last lines say why, before the next start rotates it away.
                drift ??= $"{DescribeExit(record, processId)}{LogExcerpt(now.Paths, desired)}";
            }

            EnsureInstalled(offering);
            steps.AddRange([StartStep(desired, offering), WaitStep(desired, offering)]);
            return new DeploymentPlan(steps, drift);
        }

        if (!IsDeployed(record, desired) || desired.Restarts > record.Restarts)
        {
            drift ??= IsDeployed(record, desired) ? null : $"Deployed {record.Version} ({record.Size}); the spec asks for {desired.Version} ({desired.Size}).";
            EnsureInstalled(offering);
            steps.AddRange([StopStep(desired), StartStep(desired, offering), WaitStep(desired, offering)]);
            return new DeploymentPlan(steps, drift);
        }

        if (!LocalAccessControl.IsCurrent(now.Paths, desired))
        {
            if (!LocalAccessControl.CanReload(now.Paths, desired))
            {
                // Launched before access control lists, or its platform password changed: only a restart gives it the new file.
                EnsureInstalled(offering);
                steps.AddRange([StopStep(desired), StartStep(desired, offering), WaitStep(desired, offering)]);
                return new DeploymentPlan(steps, drift);
            }

            steps.Add(CredentialsStep(desired));
        }

        if (record.Goal != desired.Goal || record.Generation != desired.Generation)
        {
            steps.Add(RecordStep(desired));
        }

        var ping = await PingAsync(record, desired, cancellationToken);
        if (!ping.Answered && record.LaunchedAt is { } launched && time.GetUtcNow() - launched < StartupTimeout(offering))
        {
            // A start whose wait was interrupted (a cancel, a control plane restart) is finished here, so applying the
            // spec again ends with an instance that answers. One that has run longer than its startup and stopped
            // answering is hung: that is for the control plane's liveness check to judge, not a step.
            steps.Add(WaitStep(desired, offering));
        }

        return new DeploymentPlan(steps, drift, steps.Count == 0 ? Observation(now, ping) : null);
    }

    private DeploymentPlan PlanStopped(DeploymentSpec desired, Inspection now)
    {
        var steps = new List<DeploymentStep>();
        string? drift = null;
        if (now.Process is { } process)
        {
            if (!process.Recorded)
            {
                drift = DescribeUnrecorded(DisplayNameOf(desired.Product), process);
            }

            steps.Add(StopStep(desired));
        }

        if (now.Record is null || !Directory.Exists(now.Paths.Data))
        {
            if (now.Record is not null)
            {
                drift ??= $"The data directory {now.Paths.Data} is missing.";
            }

            steps.Add(PrepareStep(desired));
        }
        else if (now.Process is null && (now.Record.Goal != desired.Goal || now.Record.Generation != desired.Generation))
        {
            steps.Add(RecordStep(desired));
        }

        return new DeploymentPlan(steps, drift, steps.Count == 0 ? Observation(now, ping: null) : null);
    }

    private DeploymentPlan PlanAbsent(DeploymentSpec desired, Inspection now)
    {
        if (now.Record is null && now.Process is null && !Directory.Exists(now.Paths.Root))
        {
            return DeploymentPlan.UpToDate with { Observed = ObservedDeployment.Absent };
        }

        var steps = new List<DeploymentStep>();
        if (now.Process is not null)
        {
            steps.Add(StopStep(desired));
        }

        steps.Add(new DeploymentStep(
            "Remove data and release port",
            cancellationToken => RemoveAsync(desired, cancellationToken),
            Settings.StopTimeout + TimeSpan.FromSeconds(60),
            PointOfNoReturn: true));
        return new DeploymentPlan(steps, Drift: null);
    }

    /// <summary>What exists, as the control plane sees it: where customers connect, where the platform probes, and how it answered.</summary>
    private ObservedDeployment Observation(Inspection now, PingResult? ping)
    {
        if (now.Record is not { } record)
        {
            return ObservedDeployment.Absent;
        }

        var observed = new ObservedDeployment
        {
            Status = DeploymentStatus.Stopped,
            Endpoint = new Endpoint { Host = Settings.AdvertisedHost ?? Settings.BindAddress, Port = record.Port },
            ProbeEndpoint = Settings.AdvertisedHost is null ? null : new Endpoint { Host = Settings.BindAddress, Port = record.Port },
            Version = record.Version,
            Size = record.Size,
            Generation = record.Generation,
            Restarts = record.Restarts,
            ProcessStarts = record.ProcessStarts,
            TlsAuthority = now.Tls ? _tls.AuthorityPem : null,
        };
        if (now.Process is not { } process || ping is null)
        {
            return observed with
            {
                Detail = record switch
                {
                    { Goal: DeploymentGoal.Running, ProcessId: { } processId } => DescribeExit(record, processId),
                    { Goal: DeploymentGoal.Running } => "Not started yet.",
                    _ => "Stopped: the data and the port are kept.",
                } + DiskNote(now.Paths),
            };
        }

        var diskNote = DiskNote(now.Paths);
        return observed with
        {
            Status = ping.Answered ? DeploymentStatus.Running : DeploymentStatus.Starting,
            // A full disk refuses the customer's writes: the instance answers PING but is not healthy.
            Health = ping.Answered && diskNote.Length == 0 ? DeploymentHealth.Healthy : DeploymentHealth.Unhealthy,
            ProbeLatency = ping.Answered ? ping.Latency : null,
            ProcessId = process.ProcessId,
            Detail = (process.Recorded
                ? ping.Detail
                : $"{ping.Detail} Process {process.ProcessId} is not in deployment.json (a start was interrupted); the next apply restarts it.") + diskNote,
        };
    }

    /// <summary>Says so when the instance's disk quota is used up; empty otherwise.</summary>
    private static string DiskNote(LocalInstancePaths paths) =>
        LocalInstanceDisk.Usage(paths) is { IsFull: true } usage
            ? $" Its disk quota is used up ({usage}): writes that need disk are refused. Delete data, or scale to a size with more disk."
            : "";

    private Task<PingResult> PingAsync(LocalInstanceRecord record, DeploymentSpec desired, CancellationToken cancellationToken) =>
        RespPingProbe.PingAsync(
            Settings.BindAddress, record.Port, InstanceAccess.PlatformUser, desired.PlatformPassword.Value, ProbeTimeout, infoSections: null, cancellationToken,
            desired.Tls ? _tls.AuthorityPem : null);

    private Inspection Inspect(DeploymentSpec desired) =>
        Inspect(desired.InstanceId, catalog.TryResolve(desired.Product, desired.Version, desired.Size, out var offering, out _) && offering.Definition.Local is { } local
            ? ResolveExecutable(local.Executable)
            : null) with { Tls = desired.Tls };

    /// <summary>
    /// What exists for the instance. The process deployment.json names is checked by PID, start time, data directory and
    /// program. Only when a launch was interrupted before its PID was recorded (or the record is gone) is /proc searched
    /// for a process of <paramref name="productExecutable"/> serving the data: never on a steady reconcile.
    /// </summary>
    private Inspection Inspect(string instanceId, string? productExecutable)
    {
        var paths = PathsFor(instanceId);
        var record = ReadRecord(paths);
        if (record is { ProcessId: { } processId, ProcessStartTime: { } startTime }
            && LocalProcesses.IsSameProcess(processId, startTime, paths.Data, record.Executable))
        {
            return new Inspection(paths, record, new LocalProcess(processId, startTime, Recorded: true, record.Executable));
        }

        var unrecorded = (record is null || record.LaunchPending) && productExecutable is not null && Directory.Exists(paths.Data)
            ? LocalProcesses.FindServing(paths.Data, productExecutable)
            : null;
        return new Inspection(paths, record, unrecorded);
    }

    private LocalInstancePaths PathsFor(string instanceId) =>
        InstanceIdPattern().IsMatch(instanceId)
            ? new LocalInstancePaths(Path.GetFullPath(Settings.InstancesDirectory), instanceId)
            : throw new DeploymentFailedException(
                "invalid-instance-id",
                $"Instance id '{instanceId}' cannot name a directory: use up to 128 letters, digits, '-', '_' or '.', not starting with '.'.");

    private static LocalInstanceRecord? ReadRecord(LocalInstancePaths paths)
    {
        try
        {
            return paths.ReadRecord();
        }
        catch (JsonException exception)
        {
            throw new DeploymentFailedException(
                "record-unreadable",
                $"{paths.Record} cannot be read ({exception.Message}). Restore it, or delete the instance's directory if its data is not needed.",
                exception);
        }
    }

    private static bool IsDeployed(LocalInstanceRecord record, DeploymentSpec desired) =>
        record.Product == desired.Product && record.Version == desired.Version && record.Size == desired.Size;

    private CatalogOffering Resolve(DeploymentSpec desired)
    {
        if (!catalog.TryResolve(desired.Product, desired.Version, desired.Size, out var offering, out var errors))
        {
            throw new DeploymentFailedException("unknown-offering", string.Join(" ", errors.Values.SelectMany(messages => messages)));
        }

        return offering.Definition.Local is null
            ? throw new DeploymentFailedException(
                "backend-unsupported",
                $"{offering.Definition.DisplayName} cannot run on the local backend: the catalog has no Local launch template for it.")
            : offering;
    }

    private static TimeSpan StartupTimeout(CatalogOffering offering) => TimeSpan.FromSeconds(offering.Definition.Local!.StartupTimeoutSeconds);

    private static string LogExcerpt(LocalInstancePaths paths, DeploymentSpec desired)
    {
        var tail = InstanceLogFile.Tail(paths, 8, desired.Password.Value);
        return tail.Length == 0 ? $" Its log ({paths.Log}) is empty." : $" Last lines of its log ({paths.Log}):\n{tail}";
    }

    private string DescribeExit(LocalInstanceRecord record, int processId)
    {
        var name = DisplayNameOf(record.Product);
        return ExitCodeOf(record.InstanceId, processId) is { } exitCode
            ? $"{name} process {processId} exited with code {exitCode}."
            : $"{name} process {processId} is not running (it exited or was killed).";
    }

    private static string DescribeUnrecorded(string displayName, LocalProcess process) =>
        $"{displayName} process {process.ProcessId} serves the instance's data but is not in deployment.json (an earlier start was interrupted).";

    private int? ExitCodeOf(string instanceId, int processId) =>
        _children.TryGetValue(instanceId, out var child) && child.Id == processId && child.WaitForExit(TimeSpan.FromSeconds(1)) ? child.ExitCode : null;

    private string DisplayNameOf(string product) =>
        catalog.Products.TryGetValue(product, out var definition) && definition.DisplayName.Length > 0 ? definition.DisplayName : product;

    private static string Describe(CatalogOffering offering) => $"{offering.Definition.DisplayName} {offering.Version} ({offering.Size})";

    [GeneratedRegex("^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex InstanceIdPattern();

    /// <param name="Tls">The instance serves TLS (what was asked of it), so its observation names the CA.</param>
    private sealed record Inspection(LocalInstancePaths Paths, LocalInstanceRecord? Record, LocalProcess? Process, bool Tls = false);
}
