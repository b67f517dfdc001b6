using System.Globalization;
using Billing;
using Billing.Usage;
using ControlPlane.Security;
using ControlPlane.Tests.Support;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Billing.Tests.Support;

/// <summary>
/// The whole control plane in-process (API, silo, real Garnet instances) over a data directory the test owns, so a
/// second host on the same directory is a restart. Billing runs on <see cref="Clock"/>, a fake clock the test moves;
/// usage goes to <see cref="Ledger"/>, which outlives the host as a real ledger would, or, without one, to the real
/// ledger in the host's database.
/// </summary>
public sealed class BillingHost(TestDirectory directory, FakeTimeProvider clock, RecordingLedger? ledger, IReadOnlyDictionary<string, string>? settings = null)
    : WebApplicationFactory<Program>
{
    // Billing.Tests' instances use 11000–11999 (ControlPlane.Tests 12000–20999, Provisioner.Tests 22000–31999), in
    // blocks of 100 so hosts running at the same time never share a port.
    private const int FirstPort = 11000;
    private const int Blocks = 10;
    private static int s_nextBlock = Random.Shared.Next(Blocks);

    private readonly int _firstPort = FirstPort + (Interlocked.Increment(ref s_nextBlock) % Blocks * 100);

    public FakeTimeProvider Clock { get; } = clock;

    public RecordingLedger? Ledger { get; } = ledger;

    public CapturedLogs Logs { get; } = new();

    public IGrainFactory Grains => Services.GetRequiredService<IGrainFactory>();

    public IInstanceMeteringGrain Metering(string instanceId) => Grains.GetGrain<IInstanceMeteringGrain>(instanceId);

    /// <summary>Tells billing an instance ran from <paramref name="from"/> until <paramref name="until"/>, afterwards, with the times it happened.</summary>
    public async Task RunAsync(string tenantId, string instanceId, string size, DateTimeOffset from, DateTimeOffset until)
    {
        await Metering(instanceId).ObserveLifecycleAsync(new InstanceLifecycleNotice { TenantId = tenantId, State = MeteredState.Running, Size = size, ChangedAt = from });
        await Metering(instanceId).ObserveLifecycleAsync(new InstanceLifecycleNotice { TenantId = tenantId, State = MeteredState.Stopped, Size = size, ChangedAt = until });
    }

    public ControlPlaneApi CreateAdminApi() =>
        ControlPlaneApi.WithKey(CreateClient(), File.ReadAllText(Path.Combine(directory.Path, "admin-api-key")).Trim());

    /// <summary>A client with an API key that sees only <paramref name="tenantId"/>.</summary>
    public async Task<ControlPlaneApi> CreateTenantApiAsync(string tenantId)
    {
        var (_, secret) = await Services.GetRequiredService<ApiKeyStore>().CreateAsync("tenant key", Roles.Admin, tenantId);
        return ControlPlaneApi.WithKey(CreateClient(), secret);
    }

    public string InstanceDirectory(string instanceId) => Path.Combine(directory.Path, "instances", instanceId);

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("ControlPlane:DataDir", directory.Path);
        builder.UseSetting("Provisioner:Local:FirstPort", _firstPort.ToString(CultureInfo.InvariantCulture));
        builder.UseSetting("Provisioner:Local:LastPort", (_firstPort + 99).ToString(CultureInfo.InvariantCulture));
        // Probes run when the test says so, one per fake minute, never on the real clock's timer.
        builder.UseSetting("Billing:Sla:ProbeInterval", "1.00:00:00");
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            builder.UseSetting(key, value);
        }

        builder.ConfigureTestServices(services =>
        {
            services.AddKeyedSingleton<TimeProvider>(BillingClock.Key, Clock);
            if (Ledger is not null)
            {
                services.AddSingleton<IUsageLedger>(Ledger);
            }
        });
        builder.ConfigureLogging(logging => logging.SetMinimumLevel(LogLevel.Debug).AddProvider(Logs));
    }
}
