using ControlPlane.Hosting;
using ControlPlane.Instances;
using ControlPlane.Operations;
using ControlPlane.Persistence;
using ControlPlane.Tenants;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;

namespace ControlPlane.Tests.Grains;

/// <summary>
/// An Orleans test cluster wired like the real silo: SQLite grain state and reminders in a private data
/// directory, the real provisioning worker and Local backend. Restartable over the same directory.
/// </summary>
public sealed class GrainCluster : IAsyncDisposable
{
    private readonly (int First, int Last) _ports = Ports.InstanceRange();
    private readonly Dictionary<string, string?> _settings;
    private Database? _database;

    private readonly string? _postgres;

    private GrainCluster(TestDirectory directory, IDictionary<string, string?>? settings, string? postgres)
    {
        DataDirectory = directory;
        _postgres = postgres;
        _settings = new Dictionary<string, string?>
        {
            ["Provisioner:Local:FirstPort"] = _ports.First.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Provisioner:Local:LastPort"] = _ports.Last.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Reconcile:Interval"] = "00:00:01",
            ["Plans:DefaultPlan"] = "team",
            ["Plans:Definitions:team:MaxInstances"] = "25",
        };
        if (postgres is not null)
        {
            // Cluster mode shares its key set; here, one file in the data directory.
            var keyFile = new ControlPlane.Secrets.SecretKeyFile(Path.Combine(DataDirectory.Path, "cluster-secret-keys"));
            keyFile.EnsureCreated();
            _settings["Secrets:KeyFile"] = keyFile.Path;
        }

        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            _settings[key] = value;
        }
    }

    public TestDirectory DataDirectory { get; }

    /// <summary>The silo's database: its SQLite file, as embedded mode keeps it in the data directory, or the PostgreSQL it was given.</summary>
    public Database Database => _database ??= _postgres is null
        ? Database.Sqlite(DatabaseFile, ConfiguredDatabaseOptions())
        : Database.Postgres(_postgres, ConfiguredDatabaseOptions());

    public string DatabaseFile => Path.Combine(DataDirectory.Path, "controlplane.db");

    /// <summary>Every command the grains sent to the provisioning engine.</summary>
    public RecordingCommandBus Commands => SiloServices.GetRequiredService<RecordingCommandBus>();

    /// <summary>The first silo's services, as the grains see them.</summary>
    public IServiceProvider SiloServices => ((InProcessSiloHandle)Cluster.Silos[0]).SiloHost.Services;

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public IGrainFactory Grains => Cluster.Client;

    /// <summary>A cluster over a SQLite file, or over <paramref name="postgres"/> (grain state and reminders) when given.</summary>
    /// <param name="directory">The data directory, which the cluster then owns (a new one unless given).</param>
    public static async Task<GrainCluster> StartAsync(IDictionary<string, string?>? settings = null, string? postgres = null, TestDirectory? directory = null)
    {
        var cluster = new GrainCluster(directory ?? new TestDirectory(), settings, postgres);
        await cluster.DeployAsync();
        return cluster;
    }

    /// <summary>Stops every silo (as a control-plane restart does) and starts a new cluster over the same SQLite file and instances.</summary>
    /// <param name="whileStopped">What happens to the stored state while no silo runs (a crash's leftovers, a restore).</param>
    public async Task RestartAsync(Func<Task>? whileStopped = null)
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        if (whileStopped is not null)
        {
            await whileStopped();
        }

        await DeployAsync();
    }

    public IInstanceGrain Instance(string instanceId) => Grains.GetGrain<IInstanceGrain>(instanceId);

    public async Task<ITenantGrain> CreateTenantAsync(string plan = "team")
    {
        var view = await Grains.GetGrain<ITenantDirectoryGrain>(0).CreateTenantAsync(new CreateTenantCommand
        {
            Name = "Grain Test Tenant",
            Plan = plan,
            RequestedBy = "test",
        });
        return Grains.GetGrain<ITenantGrain>(view.Id);
    }

    public static InstanceCommand NewInstance(string name) => new()
    {
        Verb = OperationType.Create,
        Name = name,
        Product = "garnet",
        Version = "2.2.8",
        Size = "small",
        RequestedBy = "test",
    };

    public static InstanceCommand Verb(string instanceId, OperationType verb) => new() { InstanceId = instanceId, Verb = verb, RequestedBy = "test" };

    /// <summary>Polls the operation until it ends; fails the test if it does not end within <paramref name="seconds"/>.</summary>
    public async Task<OperationRecord> WaitForOperationAsync(OperationRecord operation, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var current = await Instance(operation.InstanceId).GetOperationAsync(operation.Id);
            if (current is { IsActive: false })
            {
                return current;
            }

            Assert.True(DateTime.UtcNow < deadline, $"Operation {operation.Id} did not finish: {current}");
            await Task.Delay(50);
        }
    }

    private DatabaseOptions ConfiguredDatabaseOptions() =>
        new ConfigurationBuilder().AddInMemoryCollection(_settings).Build().GetSection(DatabaseOptions.SectionName).Get<DatabaseOptions>() ?? new();

    public string InstanceDirectory(string instanceId) => Path.Combine(DataDirectory.Path, "instances", instanceId);

    public async ValueTask DisposeAsync()
    {
        await Cluster.DisposeAsync();
        DataDirectory.Dispose();
    }

    private async Task DeployAsync()
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.ConfigureSiloHost((_, host) =>
        {
            host.Configuration.AddInMemoryCollection(_settings);
            host.Services.AddControlPlaneCore(host.Configuration, Database, new DataDirectory(DataDirectory.Path));
            RecordingCommandBus.Register(host.Services);
        });
        builder.ConfigureSilo((_, silo) => silo.AddControlPlaneStorage(_postgres));
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }
}
