using System.Globalization;
using System.Text;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Provisioner.Deployments;
using Provisioner.Local;
using Provisioner.Messaging;
using Provisioner.Workers;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Provisioner.Tests.TestSupport;

/// <summary>
/// One test's provisioner: a real host with AddProvisioner over its own temp directory and port range,
/// real Garnet processes, and an event sink in place of the control plane. Disposing it kills every
/// process that mentions its directory, even when the test failed halfway, and removes the directory.
/// </summary>
public sealed class ProvisionerHarness : IAsyncDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly Dictionary<string, string?> _settings;
    private readonly List<IHost> _hosts = [];
    private IHost? _host;

    private ProvisionerHarness(ITestOutputHelper output, int portCount, Action<Dictionary<string, string?>>? configure)
    {
        _output = output;
        Root = Directory.CreateTempSubdirectory("provisioner-tests-").FullName;
        // As an operator would: instances' own users pass through to their data (see LocalIsolation).
        File.SetUnixFileMode(Root, PassableDirectory);
        (FirstPort, LastPort) = TestPorts.Next(portCount);
        Logs = new CapturingLoggerProvider(output);
        _settings = new Dictionary<string, string?>
        {
            ["Provisioner:Local:InstancesDirectory"] = InstancesDirectory,
            ["Provisioner:Local:FirstPort"] = FirstPort.ToString(CultureInfo.InvariantCulture),
            ["Provisioner:Local:LastPort"] = LastPort.ToString(CultureInfo.InvariantCulture),
            // Generous: two cores may be shared with another build while twenty instances start.
            ["Catalog:Products:garnet:Local:StartupTimeoutSeconds"] = "120",
        };
        configure?.Invoke(_settings);
    }

    /// <summary>0711: others may pass through, not list.</summary>
    public const UnixFileMode PassableDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.OtherExecute;

    public string Root { get; }
    public string InstancesDirectory => Path.Combine(Root, "instances");
    public int FirstPort { get; }
    public int LastPort { get; }
    public string Password { get; } = "pw-" + Guid.NewGuid().ToString("N");

    /// <summary>The platform's own password in every spec: what the backend's probes sign in with.</summary>
    public string PlatformPassword { get; } = "platform-" + Guid.NewGuid().ToString("N");
    public RecordingEventSink Events { get; } = new();
    public CapturingLoggerProvider Logs { get; }

    public IServiceProvider Services => (_host ?? throw new InvalidOperationException("No host is running.")).Services;
    public LocalBackend Backend => Services.GetServices<IDeploymentBackend>().OfType<LocalBackend>().Single();
    public ProvisioningWorker Worker => Services.GetRequiredService<ProvisioningWorker>();
    public IProvisioningCommandBus Bus => Services.GetRequiredService<IProvisioningCommandBus>();

    public static async Task<ProvisionerHarness> StartAsync(
        ITestOutputHelper output, int portCount = 20, Action<Dictionary<string, string?>>? configure = null)
    {
        var harness = new ProvisionerHarness(output, portCount, configure);
        await harness.RestartControlPlaneAsync();
        return harness;
    }

    /// <summary>Replaces the host with a new one over the same directory, as a restarted control plane; instances keep running.</summary>
    public async Task RestartControlPlaneAsync()
    {
        if (_host is not null)
        {
            await _host.StopAsync();
            _host.Dispose();
            _hosts.Remove(_host);
        }

        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(_settings);
        builder.Logging.AddProvider(Logs);
        builder.Services.AddSingleton<IProvisioningEventSink>(Events);
        builder.Services.AddProvisioner(builder.Configuration);
        _host = builder.Build();
        _hosts.Add(_host);
        await _host.StartAsync();
    }

    public DeploymentSpec Spec(string instanceId, DeploymentGoal goal = DeploymentGoal.Running, string size = "small", long generation = 1) => new()
    {
        InstanceId = instanceId,
        TenantId = "tenant-1",
        Backend = "local",
        Product = "garnet",
        Version = "2.2.8",
        Size = size,
        Goal = goal,
        Password = Secret.Of(Password),
        PlatformPassword = Secret.Of(PlatformPassword),
        Generation = generation,
    };

    public static ApplyDeploymentCommand Command(DeploymentSpec spec, ApplyPurpose purpose = ApplyPurpose.Operation, string? operationId = null) => new()
    {
        InstanceId = spec.InstanceId,
        OperationId = purpose == ApplyPurpose.Reconcile ? null : operationId ?? "op-" + Guid.NewGuid().ToString("N"),
        IssuedAt = DateTimeOffset.UtcNow,
        Spec = spec,
        Purpose = purpose,
    };

    /// <summary>Runs one Apply through the worker, as the command bus would, and returns how it ended.</summary>
    public async Task<ProvisioningEvent> ApplyAsync(DeploymentSpec spec, ApplyPurpose purpose = ApplyPurpose.Operation, string? operationId = null)
    {
        var command = Command(spec, purpose, operationId);
        var before = Events.For(spec.InstanceId).Count;
        await Worker.HandleAsync(command, CancellationToken.None);
        return Events.For(spec.InstanceId).Skip(before).Last(e => e is DeploymentApplied or DeploymentFailed or DeploymentCancelled);
    }

    public async Task<DeploymentApplied> ApplySucceedsAsync(DeploymentSpec spec, ApplyPurpose purpose = ApplyPurpose.Operation)
    {
        var outcome = await ApplyAsync(spec, purpose);
        return outcome as DeploymentApplied ?? throw new Xunit.Sdk.XunitException($"Expected DeploymentApplied, got {outcome}");
    }

    public ConnectionMultiplexer Connect(Endpoint endpoint, string? password = null)
    {
        var options = new ConfigurationOptions
        {
            EndPoints = { { endpoint.Host, endpoint.Port } },
            Password = password ?? Password,
            AbortOnConnectFail = true,
            ConnectRetry = 1,
            ConnectTimeout = 10000,
            SyncTimeout = 10000,
            AllowAdmin = true,
        };
        return ConnectionMultiplexer.Connect(options);
    }

    internal LocalInstanceRecord? Record(string instanceId) =>
        LocalInstancePaths.ReadRecord(Path.Combine(InstancesDirectory, instanceId, "deployment.json"));

    public string InstanceDirectory(string instanceId) => Path.Combine(InstancesDirectory, instanceId);

    /// <summary>Live processes whose command line names the instance's data directory (the Local backend's identity rule).</summary>
    public IReadOnlyList<int> ProcessesServing(string instanceId) =>
        ProcessesWhere(arguments => arguments.Contains(Path.Combine(InstanceDirectory(instanceId), "data")));

    public static bool IsAlive(int processId)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{processId}/stat");
            return stat[(stat.LastIndexOf(')') + 2)] is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }

    public static string Environment(int processId, string name) =>
        Encoding.UTF8.GetString(File.ReadAllBytes($"/proc/{processId}/environ"))
            .Split('\0')
            .Single(variable => variable.StartsWith(name + "=", StringComparison.Ordinal))[(name.Length + 1)..];

    public async ValueTask DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            try
            {
                await host.StopAsync(TimeSpan.FromSeconds(30));
            }
            finally
            {
                host.Dispose();
            }
        }

        await KillProcessesUnderAsync(Root);
        LocalIsolation.ReleaseAll(InstancesDirectory);
        Directory.Delete(Root, recursive: true);
        var leaked = Logs.Lines.Where(line => line.Contains(Password, StringComparison.Ordinal)).ToList();
        if (leaked.Count > 0)
        {
            throw new Xunit.Sdk.XunitException($"The password appeared in the log: {leaked[0]}");
        }
    }

    /// <summary>Kills every process whose command line mentions <paramref name="root"/>, and waits until they are gone.</summary>
    public static async Task KillProcessesUnderAsync(string root)
    {
        var leftovers = ProcessesWhere(arguments => arguments.Any(argument => argument.Contains(root, StringComparison.Ordinal)));
        foreach (var processId in leftovers)
        {
            try
            {
                using var process = System.Diagnostics.Process.GetProcessById(processId);
                process.Kill();
            }
            catch (ArgumentException)
            {
                // Already gone.
            }
        }

        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (leftovers.Any(IsAlive) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(25);
        }
    }

    internal static List<int> ProcessesWhere(Func<string[], bool> match)
    {
        var found = new List<int>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out var processId) || processId == System.Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var arguments = Encoding.UTF8.GetString(File.ReadAllBytes(Path.Combine(directory, "cmdline"))).Split('\0');
                if (match(arguments) && IsAlive(processId))
                {
                    found.Add(processId);
                }
            }
            catch (IOException)
            {
                // The process exited while we looked.
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return found;
    }
}
