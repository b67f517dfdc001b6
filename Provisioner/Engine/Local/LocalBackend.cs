using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
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
/// backend (a restarted control plane) adopts running instances instead of starting them twice.
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
    TimeProvider time,
    ILogger<LocalBackend> logger) : IDeploymentBackend, IDisposable
{
    public const string BackendName = "local";

    // The benchmark compares Create→Running with a bare process start: poll often so the wait adds little.
    private static readonly TimeSpan StartupPollInterval = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);

    private readonly LocalPortAllocator _ports = new(options);

    // Processes this backend started, only to report their exit code: instances started by an earlier
    // control plane are not our children and are tracked by PID and start time instead.
    private readonly ConcurrentDictionary<string, Process> _children = new(StringComparer.Ordinal);

    public string Name => BackendName;

    private LocalBackendOptions Settings => options.Value;

    public async Task<DeploymentPlan> PlanAsync(DeploymentSpec desired, CancellationToken cancellationToken)
    {
        var now = Inspect(desired.InstanceId);
        var recordedGeneration = Math.Max(now.Record?.Generation ?? long.MinValue, now.Paths.ReadTombstone() ?? long.MinValue);
        if (recordedGeneration > desired.Generation)
        {
            logger.LogInformation(
                "Ignoring generation {Generation} of instance {InstanceId}: generation {RecordedGeneration} is already deployed",
                desired.Generation, desired.InstanceId, recordedGeneration);
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
        var now = Inspect(desired.InstanceId);
        if (now.Record is not { } record)
        {
            return ObservedDeployment.Absent;
        }

        InstanceLogFile.Bound(now.Paths, Settings.MaxLogBytes);
        var observed = new ObservedDeployment
        {
            Status = DeploymentStatus.Stopped,
            Endpoint = new Endpoint { Host = Settings.BindAddress, Port = record.Port },
            Version = record.Version,
            Size = record.Size,
            Generation = record.Generation,
        };
        if (now.Process is not { } process)
        {
            return observed with
            {
                Detail = record switch
                {
                    { Goal: DeploymentGoal.Running, ProcessId: { } processId } => DescribeExit(record, processId),
                    { Goal: DeploymentGoal.Running } => "Not started yet.",
                    _ => "Stopped: the data and the port are kept.",
                },
            };
        }

        var ping = await RespPingProbe.PingAsync(Settings.BindAddress, record.Port, desired.Password.Value, ProbeTimeout, cancellationToken);
        return observed with
        {
            Status = ping.Answered ? DeploymentStatus.Running : DeploymentStatus.Starting,
            Health = ping.Answered ? DeploymentHealth.Healthy : DeploymentHealth.Unhealthy,
            ProbeLatency = ping.Answered ? ping.Latency : null,
            ProcessId = process.ProcessId,
            Detail = process.Recorded
                ? ping.Detail
                : $"{ping.Detail} Process {process.ProcessId} is not in deployment.json (a start was interrupted); the next apply restarts it.",
        };
    }

    /// <summary>Stops every instance's process, keeping data, ports and goals: the next reconcile starts them again.</summary>
    public async Task StopAllAsync(CancellationToken cancellationToken)
    {
        var running = LocalInstancePaths.ReadAllRecords(Settings.InstancesDirectory)
            .Select(record => Inspect(record.InstanceId))
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

        if (now.Record is null || !Directory.Exists(now.Paths.Data))
        {
            if (now.Record is not null)
            {
                drift ??= $"The data directory {now.Paths.Data} is missing.";
            }

            EnsureInstalled(offering);
            steps.Add(PrepareStep(desired));
            steps.Add(StartStep(desired, offering));
            steps.Add(WaitStep(desired, offering));
            return new DeploymentPlan(steps, drift);
        }

        var record = now.Record;
        if (process is not null)
        {
            if (record.Product != desired.Product || record.Version != desired.Version || record.Size != desired.Size)
            {
                EnsureInstalled(offering);
                steps.Add(StopStep(desired));
                steps.Add(StartStep(desired, offering));
                steps.Add(WaitStep(desired, offering));
            }
            else
            {
                if (record.Goal != desired.Goal || record.Generation != desired.Generation)
                {
                    steps.Add(RecordStep(desired));
                }

                // A start whose wait was interrupted (a cancel, a control plane restart) is finished here, so
                // applying the spec again ends with an instance that answers, not one that merely runs.
                var ping = await RespPingProbe.PingAsync(Settings.BindAddress, record.Port, desired.Password.Value, ProbeTimeout, cancellationToken);
                if (!ping.Answered)
                {
                    steps.Add(WaitStep(desired, offering));
                }
            }

            return new DeploymentPlan(steps, drift);
        }

        if (record is { Goal: DeploymentGoal.Running, ProcessId: { } processId })
        {
            drift ??= DescribeExit(record, processId);
        }

        EnsureInstalled(offering);
        steps.Add(StartStep(desired, offering));
        steps.Add(WaitStep(desired, offering));
        return new DeploymentPlan(steps, drift);
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

        return new DeploymentPlan(steps, drift);
    }

    private DeploymentPlan PlanAbsent(DeploymentSpec desired, Inspection now)
    {
        if (now.Record is null && now.Process is null && !Directory.Exists(now.Paths.Root))
        {
            return DeploymentPlan.UpToDate;
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

    private DeploymentStep PrepareStep(DeploymentSpec desired) => new(
        "Reserve port and prepare data directory",
        _ =>
        {
            Prepare(desired);
            return Task.CompletedTask;
        },
        TimeSpan.FromSeconds(15));

    private DeploymentStep StartStep(DeploymentSpec desired, CatalogOffering offering) => new(
        $"Start {offering.Definition.DisplayName} {offering.Version} ({offering.Size})",
        cancellationToken => StartAsync(desired, offering, cancellationToken),
        Settings.StopTimeout + TimeSpan.FromSeconds(30));

    private DeploymentStep WaitStep(DeploymentSpec desired, CatalogOffering offering) => new(
        "Wait for authenticated PING",
        cancellationToken => WaitUntilAnsweringAsync(desired, offering, cancellationToken),
        // Longer than the template's own startup timeout, so a slow start fails with the actionable message below.
        TimeSpan.FromSeconds(offering.Definition.Local!.StartupTimeoutSeconds + 15));

    private DeploymentStep StopStep(DeploymentSpec desired) => new(
        "Stop process",
        cancellationToken => StopAsync(desired, cancellationToken),
        Settings.StopTimeout + TimeSpan.FromSeconds(15));

    private DeploymentStep RecordStep(DeploymentSpec desired) => new(
        $"Record generation {desired.Generation}",
        _ =>
        {
            var paths = PathsFor(desired.InstanceId);
            if (ReadRecord(paths) is { } record)
            {
                paths.WriteRecord(record with { Goal = desired.Goal, Generation = desired.Generation, UpdatedAt = time.GetUtcNow() });
            }

            return Task.CompletedTask;
        },
        TimeSpan.FromSeconds(15));

    private LocalInstanceRecord Prepare(DeploymentSpec desired)
    {
        var paths = PathsFor(desired.InstanceId);
        paths.CreateDirectories();
        if (ReadRecord(paths) is { } existing)
        {
            var updated = existing with { Goal = desired.Goal, Generation = desired.Generation, UpdatedAt = time.GetUtcNow() };
            paths.WriteRecord(updated);
            return updated;
        }

        var reserved = _ports.Reserve(
            desired.InstanceId,
            paths,
            port => new LocalInstanceRecord
            {
                InstanceId = desired.InstanceId,
                Product = desired.Product,
                Version = desired.Version,
                Size = desired.Size,
                Port = port,
                Goal = desired.Goal,
                Generation = desired.Generation,
                UpdatedAt = time.GetUtcNow(),
            },
            avoid: null);
        logger.LogInformation("Reserved port {Port} and data directory {DataDirectory} for instance {InstanceId}", reserved.Port, paths.Data, desired.InstanceId);
        return reserved;
    }

    private async Task StartAsync(DeploymentSpec desired, CatalogOffering offering, CancellationToken cancellationToken)
    {
        var paths = PathsFor(desired.InstanceId);
        var record = Directory.Exists(paths.Data) && ReadRecord(paths) is { } existing ? existing : Prepare(desired);
        var now = Inspect(desired.InstanceId);
        if (now.Process is { Recorded: true } && IsDeployed(record, desired))
        {
            return;
        }

        if (now.Process is { } stale)
        {
            await LocalProcesses.TerminateAsync(stale, paths.Data, Settings.StopTimeout, cancellationToken);
        }

        var home = EnsureInstalled(offering);
        if (!LocalPortAllocator.IsFree(IPAddress.Parse(Settings.BindAddress), record.Port))
        {
            var moved = _ports.Reserve(
                desired.InstanceId,
                paths,
                port => record with { Port = port, ProcessId = null, ProcessStartTime = null, UpdatedAt = time.GetUtcNow() },
                avoid: record.Port);
            logger.LogWarning(
                "Port {Port} of instance {InstanceId} is in use by another program; the instance moves to port {NewPort}",
                record.Port, desired.InstanceId, moved.Port);
            throw new TransientDeploymentException(
                $"Port {record.Port} of instance {desired.InstanceId} is in use by another program; the instance moves to port {moved.Port}.");
        }

        var placeholders = LaunchCommand.Placeholders(home, record.Port, Settings.BindAddress, paths.Data, offering.SizeDefinition);
        var launch = LaunchCommand.Render(offering.Definition.Local!, placeholders, desired.Password);
        launch = launch with { Executable = ResolveExecutable(launch.Executable) ?? throw ExecutableMissing(offering, launch.Executable) };

        InstanceLogFile.Rotate(paths, Settings.MaxLogBytes);
        var process = LocalProcesses.Start(launch, paths.Root, paths.Log);
        if (_children.TryRemove(desired.InstanceId, out var previous))
        {
            previous.Dispose();
        }

        _children[desired.InstanceId] = process;
        paths.WriteRecord(record with
        {
            Product = desired.Product,
            Version = desired.Version,
            Size = desired.Size,
            Goal = DeploymentGoal.Running,
            Generation = desired.Generation,
            ProcessId = process.Id,
            // Zero when the process is already gone; the wait step then reports how it exited.
            ProcessStartTime = LocalProcesses.ReadStartTime(process.Id) ?? 0,
            UpdatedAt = time.GetUtcNow(),
        });
        logger.LogInformation(
            "Started {Product} {Version} ({Size}) for instance {InstanceId} as process {ProcessId} on {Address}:{Port}",
            desired.Product, desired.Version, desired.Size, desired.InstanceId, process.Id, Settings.BindAddress, record.Port);
    }

    private async Task WaitUntilAnsweringAsync(DeploymentSpec desired, CatalogOffering offering, CancellationToken cancellationToken)
    {
        var paths = PathsFor(desired.InstanceId);
        var timeout = TimeSpan.FromSeconds(offering.Definition.Local!.StartupTimeoutSeconds);
        var started = time.GetTimestamp();
        while (true)
        {
            var record = ReadRecord(paths);
            if (record is not { ProcessId: { } processId, ProcessStartTime: { } startTime }
                || !LocalProcesses.IsSameProcess(processId, startTime, paths.Data))
            {
                throw ExitedDuringStartup(desired, offering, record, paths);
            }

            var ping = await RespPingProbe.PingAsync(Settings.BindAddress, record.Port, desired.Password.Value, ProbeTimeout, cancellationToken);
            var elapsed = time.GetElapsedTime(started);
            if (ping.Answered)
            {
                logger.LogInformation(
                    "Instance {InstanceId} answers on {Address}:{Port} {ElapsedMs:0} ms after the start step",
                    desired.InstanceId, Settings.BindAddress, record.Port, elapsed.TotalMilliseconds);
                return;
            }

            if (elapsed > timeout)
            {
                throw new DeploymentFailedException(
                    "startup-timeout",
                    $"{Describe(offering)} (process {processId}) did not answer an authenticated PING on {Settings.BindAddress}:{record.Port} " +
                    $"within {timeout.TotalSeconds:0} s. Last attempt: {ping.Detail}{LogExcerpt(paths, desired)}");
            }

            await Task.Delay(StartupPollInterval, time, cancellationToken);
        }
    }

    private async Task StopAsync(DeploymentSpec desired, CancellationToken cancellationToken)
    {
        var now = Inspect(desired.InstanceId);
        if (now.Process is { } process)
        {
            logger.LogInformation("Stopping process {ProcessId} of instance {InstanceId}", process.ProcessId, desired.InstanceId);
            await LocalProcesses.TerminateAsync(process, now.Paths.Data, Settings.StopTimeout, cancellationToken);
        }

        if (now.Record is { } record)
        {
            now.Paths.WriteRecord(record with
            {
                ProcessId = null,
                ProcessStartTime = null,
                Goal = desired.Goal,
                Generation = desired.Generation,
                UpdatedAt = time.GetUtcNow(),
            });
        }

        ForgetChild(desired.InstanceId);
    }

    private async Task RemoveAsync(DeploymentSpec desired, CancellationToken cancellationToken)
    {
        var now = Inspect(desired.InstanceId);
        if (now.Process is { } process)
        {
            await LocalProcesses.TerminateAsync(process, now.Paths.Data, Settings.StopTimeout, cancellationToken);
        }

        // The tombstone goes first: once the record is gone it is what keeps a late command from recreating the instance.
        now.Paths.WriteTombstone(desired.Generation);
        try
        {
            if (Directory.Exists(now.Paths.Root))
            {
                Directory.Delete(now.Paths.Root, recursive: true);
            }
        }
        catch (IOException exception)
        {
            throw new TransientDeploymentException($"Could not remove {now.Paths.Root} yet.", exception);
        }

        ForgetChild(desired.InstanceId);
        logger.LogInformation(
            "Removed instance {InstanceId}: data deleted, port {Port} released", desired.InstanceId, now.Record?.Port);
    }

    private Inspection Inspect(string instanceId)
    {
        var paths = PathsFor(instanceId);
        var record = ReadRecord(paths);
        if (record is { ProcessId: { } processId, ProcessStartTime: { } startTime }
            && LocalProcesses.IsSameProcess(processId, startTime, paths.Data))
        {
            return new Inspection(paths, record, new LocalProcess(processId, startTime, Recorded: true));
        }

        // A process may serve the data without being recorded when a start was interrupted between
        // launching it and writing deployment.json; finding it is what prevents a duplicate or an orphan.
        var unrecorded = Directory.Exists(paths.Data) ? LocalProcesses.FindServing(paths.Data) : null;
        return new Inspection(paths, record, unrecorded);
    }

    private LocalInstancePaths PathsFor(string instanceId)
    {
        if (!InstanceIdPattern().IsMatch(instanceId))
        {
            throw new DeploymentFailedException(
                "invalid-instance-id",
                $"Instance id '{instanceId}' cannot name a directory: use up to 128 letters, digits, '-', '_' or '.', not starting with '.'.");
        }

        return new LocalInstancePaths(Path.GetFullPath(Settings.InstancesDirectory), instanceId);
    }

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
            throw new DeploymentFailedException(
                "unknown-offering",
                string.Join(" ", errors.Values.SelectMany(messages => messages)));
        }

        if (offering.Definition.Local is null)
        {
            throw new DeploymentFailedException(
                "backend-unsupported",
                $"{offering.Definition.DisplayName} cannot run on the local backend: the catalog has no Local launch template for it.");
        }

        return offering;
    }

    /// <summary>Checks that the version's program is where the catalog says; returns its absolute home.</summary>
    private string EnsureInstalled(CatalogOffering offering)
    {
        var home = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, offering.VersionDefinition.Home));
        var template = offering.Definition.Local!;
        var placeholders = LaunchCommand.Placeholders(home, 0, Settings.BindAddress, "", offering.SizeDefinition);
        var missing = Directory.Exists(home)
            ? template.Arguments
                .Where(argument => argument.StartsWith("{home}", StringComparison.Ordinal))
                .Select(argument => LaunchCommand.Fill(argument, placeholders))
                .FirstOrDefault(path => !File.Exists(path))
            : home;
        if (missing is not null)
        {
            throw new DeploymentFailedException(
                "product-not-installed",
                $"{offering.Definition.DisplayName} {offering.Version} is not installed at {home} ({missing} is missing): " +
                $"run `dotnet build` on the control plane, which puts it in {offering.VersionDefinition.Home} beside the application, " +
                $"or point Catalog:Products:{offering.Product}:Versions:{offering.Version}:Home at an installation.");
        }

        if (ResolveExecutable(template.Executable) is null)
        {
            throw ExecutableMissing(offering, template.Executable);
        }

        return home;
    }

    private static DeploymentFailedException ExecutableMissing(CatalogOffering offering, string executable) => new(
        "executable-missing",
        $"Cannot start {offering.Definition.DisplayName} {offering.Version}: the program '{executable}' was not found. " +
        $"Install it, or set Catalog:Products:{offering.Product}:Local:Executable to its full path.");

    /// <summary>An absolute path for <paramref name="executable"/>: as given, the .NET host running us for <c>dotnet</c>, or from PATH.</summary>
    private static string? ResolveExecutable(string executable)
    {
        if (Path.IsPathRooted(executable))
        {
            return File.Exists(executable) ? executable : null;
        }

        if (executable == "dotnet")
        {
            var runtimeHost = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..", "dotnet"));
            if (File.Exists(runtimeHost))
            {
                return runtimeHost;
            }
        }

        return (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, executable))
            .FirstOrDefault(File.Exists);
    }

    private DeploymentFailedException ExitedDuringStartup(
        DeploymentSpec desired, CatalogOffering offering, LocalInstanceRecord? record, LocalInstancePaths paths)
    {
        var how = record?.ProcessId is { } processId && ExitCodeOf(desired.InstanceId, processId) is { } exitCode
            ? $"exited with code {exitCode}"
            : "stopped running";
        return new DeploymentFailedException(
            "process-exited",
            $"{Describe(offering)} {how} during startup.{LogExcerpt(paths, desired)}");
    }

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

    private int? ExitCodeOf(string instanceId, int processId)
    {
        if (_children.TryGetValue(instanceId, out var child) && child.Id == processId && child.WaitForExit(TimeSpan.FromSeconds(1)))
        {
            return child.ExitCode;
        }

        return null;
    }

    private void ForgetChild(string instanceId)
    {
        if (_children.TryRemove(instanceId, out var child))
        {
            child.Dispose();
        }
    }

    private string DisplayNameOf(string product) =>
        catalog.Products.TryGetValue(product, out var definition) && definition.DisplayName.Length > 0 ? definition.DisplayName : product;

    private static string Describe(CatalogOffering offering) =>
        $"{offering.Definition.DisplayName} {offering.Version} ({offering.Size})";

    [GeneratedRegex("^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex InstanceIdPattern();

    private sealed record Inspection(LocalInstancePaths Paths, LocalInstanceRecord? Record, LocalProcess? Process);
}
