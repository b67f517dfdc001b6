using Billing.Stripe;
using ControlPlane.Persistence;
using FakeStripe;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using TestServers;

namespace Billing.Stripe.Tests.Support;

/// <summary>
/// Billing as a silo hosts it (the same <c>AddStripeBilling</c>), over a real database, talking HTTP to the fake
/// Stripe, on a controllable clock. Disposing it is a crash as far as billing can tell: nothing is flushed.
/// </summary>
public sealed class BillingHost : IAsyncDisposable
{
    private readonly IHost _host;

    private BillingHost(IHost host) => _host = host;

    public IServiceProvider Services => _host.Services;

    public T Get<T>() where T : notnull => _host.Services.GetRequiredService<T>();

    public static async Task<BillingHost> StartAsync(Database database, FakeStripeServer stripe, TimeProvider clock, Action<StripeBillingOptions>? configure = null, Action<IServiceCollection>? services = null)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Stripe:ApiKey"] = stripe.ApiKey,
            ["Stripe:ApiBase"] = stripe.BaseUrl,
            ["Stripe:MeterEventsBase"] = stripe.BaseUrl,
            ["Stripe:BackgroundDispatch"] = "false",
        });
        builder.Services.AddSingleton(database);
        builder.Services.AddSingleton(clock);
        builder.Services.AddStripeBilling(builder.Configuration);
        services?.Invoke(builder.Services);
        builder.Services.Configure<StripeBillingOptions>(options =>
        {
            // Fast, so a simulated month of failures runs in seconds; the rules are the same as production's.
            options.RequestTimeout = TimeSpan.FromSeconds(2);
            options.InProcessRetries = 1;
            options.InProcessRetryDelay = TimeSpan.FromMilliseconds(5);
            options.MaxInProcessRetryAfter = TimeSpan.Zero;
            options.RescheduleDelay = TimeSpan.FromSeconds(10);
            options.MaxRescheduleDelay = TimeSpan.FromMinutes(5);
            options.CircuitBreakDuration = TimeSpan.FromMilliseconds(500);
            options.MaxAttempts = 10_000;
            configure?.Invoke(options);
        });
        var host = builder.Build();
        await host.StartAsync();
        return new BillingHost(host);
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync(TimeSpan.FromSeconds(5));
        _host.Dispose();
    }
}

/// <summary>A fresh, empty database of either kind, migrated.</summary>
public static class TestDatabases
{
    public static async Task<Database> CreateAsync(DatabaseProvider provider)
    {
        var database = provider == DatabaseProvider.Postgres
            ? Database.Postgres(await PostgresServer.CreateDatabaseAsync("billing"))
            : Database.Sqlite(Path.Combine(Directory.CreateTempSubdirectory("billing-test-").FullName, "billing.db"));
        await Migrations.ApplyAsync(database, StripeBillingSchema.All);
        return database;
    }

    public static FakeTimeProvider Clock(DateTimeOffset start) => new(start) { AutoAdvanceAmount = TimeSpan.Zero };
}
