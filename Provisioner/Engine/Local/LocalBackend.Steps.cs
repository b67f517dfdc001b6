using System.Net;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Provisioner.Catalog;
using Provisioner.Deployments;
using Provisioner.Health;

namespace Provisioner.Local;

/// <summary>The Local backend's steps. Each is idempotent: it checks what an earlier attempt (or run) already did.</summary>
public sealed partial class LocalBackend
{
    // The benchmark compares Create→Running with a bare process start: poll often so the wait adds little.
    private static readonly TimeSpan StartupPollInterval = TimeSpan.FromMilliseconds(10);

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
        StartupTimeout(offering) + TimeSpan.FromSeconds(15));

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

    private DeploymentStep CredentialsStep(DeploymentSpec desired) => new(
        "Apply credentials",
        async cancellationToken =>
        {
            var now = Inspect(desired);
            WriteAccessControl(now.Paths, desired, isolation.Enabled ? isolation.EnsureUser(now.Paths, desired.InstanceId) : null);
            if (now is { Process: not null, Record: { } record })
            {
                await LocalAccessControl.ReloadAsync(Settings.BindAddress, record.Port, desired, ProbeTimeout, cancellationToken, desired.Tls ? _tls.AuthorityPem : null);
            }
        },
        TimeSpan.FromSeconds(15));

    /// <summary>Writes the instance's access control file; an isolated instance's process reads it as the instance's user, which then owns it.</summary>
    private static void WriteAccessControl(LocalInstancePaths paths, DeploymentSpec desired, InstanceUser? user)
    {
        LocalAccessControl.Write(paths, desired);
        GiveToInstance(user, paths.AccessControl);
    }

    /// <summary>Files the control plane writes for an isolated instance's process (its access list, its TLS certificate and key) become its user's.</summary>
    private static void GiveToInstance(InstanceUser? user, params string[] files)
    {
        if (user is null)
        {
            return;
        }

        foreach (var file in files)
        {
            LocalIsolation.GiveTo(file, user.Id);
        }
    }

    private LocalInstanceRecord Prepare(DeploymentSpec desired)
    {
        var paths = PathsFor(desired.InstanceId);
        paths.CreateDirectories(passableByInstances: isolation.Enabled);
        if (ReadRecord(paths) is { } existing)
        {
            var updated = existing with { Goal = desired.Goal, Generation = desired.Generation, UpdatedAt = time.GetUtcNow() };
            paths.WriteRecord(updated);
            _ = Isolate(paths, desired);
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
        _ = Isolate(paths, desired);
        logger.LogInformation("Reserved port {Port} and data directory {DataDirectory} for instance {InstanceId}", reserved.Port, paths.Data, desired.InstanceId);
        return reserved;
    }

    /// <summary>
    /// When instances are isolated: the instance's user, its disk mounted on the data directory, and the data its user's
    /// alone (0700), handed over once when it was written before the instance had a user. Null when not isolated.
    /// </summary>
    private InstanceUser? Isolate(LocalInstancePaths paths, DeploymentSpec desired)
    {
        if (!isolation.Enabled)
        {
            return null;
        }

        paths.CreateDirectories(passableByInstances: true);
        isolation.RequireReachable(paths.Root, "the data of instance " + desired.InstanceId, "instance-directory-unreachable");
        var user = isolation.EnsureUser(paths, desired.InstanceId);
        var diskGb = catalog.TryResolve(desired.Product, desired.Version, desired.Size, out var offering, out _) ? offering.SizeDefinition.DiskGb : 0;
        if (!LocalInstanceDisk.Ensure(paths, diskGb, user))
        {
            logger.LogWarning(
                "Instance {InstanceId} has no disk quota: its size sets no DiskGb, or its data predates disks of their own (it stays in {DataDirectory})",
                desired.InstanceId, paths.Data);
        }

        if (UnixFileOwner.Of(paths.Data) != user.Id)
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries(paths.Data, "*", SearchOption.AllDirectories).Prepend(paths.Data))
            {
                LocalIsolation.GiveTo(entry, user.Id);
            }
        }

        File.SetUnixFileMode(paths.Data, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return user;
    }

    private async Task StartAsync(DeploymentSpec desired, CatalogOffering offering, CancellationToken cancellationToken)
    {
        var paths = PathsFor(desired.InstanceId);
        var record = Directory.Exists(paths.Data) && ReadRecord(paths) is { } existing ? existing : Prepare(desired);
        var now = Inspect(desired);
        if (now.Process is { Recorded: true } && IsDeployed(record, desired) && record.Restarts >= desired.Restarts)
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

        var user = Isolate(paths, desired);
        var placeholders = LaunchCommand.Placeholders(home, record.Port, Settings.BindAddress, paths.Data, paths.AccessControl, offering.SizeDefinition);
        var launch = LaunchCommand.Render(offering.Definition.Local!, placeholders, desired.Password);
        if (desired.Tls)
        {
            launch = _tls.Apply(launch, offering, paths, desired);
            GiveToInstance(user, Path.Combine(paths.Root, LocalTls.CertificateFile), Path.Combine(paths.Root, LocalTls.KeyFile));
        }

        launch = launch with
        {
            Executable = ResolveExecutable(launch.Executable) ?? throw ExecutableMissing(offering, launch.Executable),
            // The control plane's home is not the instance user's to write in.
            Environment = user is null ? launch.Environment : new Dictionary<string, string>(launch.Environment) { ["HOME"] = paths.Data },
        };

        // Recorded before the launch: if this process dies before the PID is written, the next look searches /proc for it.
        record = record with { ProcessId = null, ProcessStartTime = null, LaunchPending = true, LaunchedAt = time.GetUtcNow(), UpdatedAt = time.GetUtcNow() };
        paths.WriteRecord(record);
        InstanceLogFile.Rotate(paths, Settings.MaxLogBytes, Settings.KeptLogs);
        WriteAccessControl(paths, desired, user);
        var process = LocalProcesses.Start(launch, user is null ? [] : isolation.LaunchPrefix(user), paths.Root, paths.Log);
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
            Executable = LocalProcesses.Canonical(launch.Executable),
            LaunchPending = false,
            ProcessStarts = record.ProcessStarts + 1,
            Restarts = Math.Max(record.Restarts, desired.Restarts),
            UpdatedAt = time.GetUtcNow(),
        });
        logger.LogInformation(
            "Started {Product} {Version} ({Size}) for instance {InstanceId} as process {ProcessId} on {Address}:{Port}",
            desired.Product, desired.Version, desired.Size, desired.InstanceId, process.Id, Settings.BindAddress, record.Port);
    }

    private async Task WaitUntilAnsweringAsync(DeploymentSpec desired, CatalogOffering offering, CancellationToken cancellationToken)
    {
        var paths = PathsFor(desired.InstanceId);
        var timeout = StartupTimeout(offering);
        var started = time.GetTimestamp();
        while (true)
        {
            var record = ReadRecord(paths);
            if (record is not { ProcessId: { } processId, ProcessStartTime: { } startTime }
                || !LocalProcesses.IsSameProcess(processId, startTime, paths.Data, record.Executable))
            {
                throw ExitedDuringStartup(desired, offering, record, paths);
            }

            var ping = await PingAsync(record, desired, cancellationToken);
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
        var now = Inspect(desired);
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
                LaunchPending = false,
                Goal = desired.Goal,
                Generation = desired.Generation,
                UpdatedAt = time.GetUtcNow(),
            });
        }

        ForgetChild(desired.InstanceId);
    }

    private async Task RemoveAsync(DeploymentSpec desired, CancellationToken cancellationToken)
    {
        var now = Inspect(desired);
        if (now.Process is { } process)
        {
            await LocalProcesses.TerminateAsync(process, now.Paths.Data, Settings.StopTimeout, cancellationToken);
        }

        // The tombstone goes first: once the record is gone it is what keeps a late command from recreating the instance.
        now.Paths.WriteTombstone(desired.Generation);
        LocalInstanceDisk.Release(now.Paths);
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

        if (isolation.Enabled)
        {
            LocalIsolation.DeleteUser(now.Paths);
        }

        ForgetChild(desired.InstanceId);
        logger.LogInformation("Removed instance {InstanceId}: data deleted, port {Port} released", desired.InstanceId, now.Record?.Port);
    }

    /// <summary>Checks that the version's program is where the catalog says; returns its absolute home.</summary>
    private string EnsureInstalled(CatalogOffering offering)
    {
        var home = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, offering.VersionDefinition.Home));
        var template = offering.Definition.Local!;
        var placeholders = LaunchCommand.Placeholders(home, 0, Settings.BindAddress, "", "", offering.SizeDefinition);
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

        var executable = ResolveExecutable(template.Executable) ?? throw ExecutableMissing(offering, template.Executable);
        isolation.RequireReachable(home, $"{offering.Definition.DisplayName} {offering.Version}", "product-unreachable");
        isolation.RequireReachable(LocalProcesses.Canonical(executable), $"the program '{template.Executable}'", "product-unreachable");
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
        return new DeploymentFailedException("process-exited", $"{Describe(offering)} {how} during startup.{LogExcerpt(paths, desired)}");
    }

    private void ForgetChild(string instanceId)
    {
        if (_children.TryRemove(instanceId, out var child))
        {
            child.Dispose();
        }
    }
}
