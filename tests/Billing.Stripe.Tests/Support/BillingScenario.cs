using System.Globalization;
using Billing.Ledger;
using Billing.Usage;
using ControlPlane.Persistence;
using FakeStripe;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Billing.Stripe.Tests.Support;

/// <summary>A database, a fake Stripe and a billing host sharing one simulated clock; the host can be crashed and rebuilt.</summary>
public sealed class BillingScenario : IAsyncDisposable
{
    private readonly Action<StripeBillingOptions>? _configure;
    private readonly Action<IServiceCollection>? _services;
    private readonly List<BillingHost> _others = [];

    private BillingScenario(Database database, FakeTimeProvider clock, FakeStripeServer stripe, Action<StripeBillingOptions>? configure, Action<IServiceCollection>? services)
    {
        _services = services;
        Database = database;
        Clock = clock;
        Stripe = stripe;
        _configure = configure;
    }

    public Database Database { get; }
    public FakeTimeProvider Clock { get; }
    public FakeStripeServer Stripe { get; }
    public BillingHost Host { get; private set; } = null!;

    public UsageLedger Ledger => Host.Get<UsageLedger>();
    public StripeBillingWorker Worker => Host.Get<StripeBillingWorker>();

    public static async Task<BillingScenario> StartAsync(
        DatabaseProvider provider = DatabaseProvider.Sqlite,
        DateTimeOffset? start = null,
        Action<StripeBillingOptions>? configure = null,
        Action<IServiceCollection>? services = null,
        Action<FakeStripeOptions>? stripe = null)
    {
        var clock = TestDatabases.Clock(start ?? new DateTimeOffset(2026, 10, 1, 0, 0, 0, TimeSpan.Zero));
        var scenario = new BillingScenario(await TestDatabases.CreateAsync(provider), clock, await FakeStripeServer.StartAsync(clock, configure: stripe), configure, services);
        scenario.Host = await BillingHost.StartAsync(scenario.Database, scenario.Stripe, clock, configure, services);
        return scenario;
    }

    /// <summary>Throws the billing host away without letting it finish anything, and starts a new one on the same database.</summary>
    public async Task RestartAsync()
    {
        await Host.DisposeAsync();
        Host = await BillingHost.StartAsync(Database, Stripe, Clock, _configure, _services);
    }

    /// <summary>Another billing host on the same database, Stripe and clock, as a second silo of one cluster runs one.</summary>
    public async Task<BillingHost> StartAnotherHostAsync()
    {
        var host = await BillingHost.StartAsync(Database, Stripe, Clock, _configure, _services);
        _others.Add(host);
        return host;
    }

    /// <summary>Runs rounds, moving the clock on between them, until nothing is waiting to be aggregated or sent.</summary>
    public async Task DrainAsync(TimeSpan step, int maxRounds = 500)
    {
        for (var round = 0; round < maxRounds; round++)
        {
            await Worker.RunOnceAsync();
            if (await ScalarAsync("SELECT COUNT(*) FROM meter_outbox WHERE status = 'pending'") == 0
                && await ScalarAsync("SELECT COUNT(*) FROM usage_hourly WHERE total <> enqueued_total") == 0)
            {
                return;
            }

            Clock.Advance(step);
        }

        throw new TimeoutException($"Billing did not catch up in {maxRounds} rounds.");
    }

    public Task<int> AppendAsync(string tenant, string meter, string id, long quantity, DateTimeOffset at, string? corrects = null) =>
        Ledger.AppendAsync([new UsageEvent { SourceEventId = id, TenantId = tenant, InstanceId = "ins-" + tenant, Meter = meter, Quantity = quantity, OccurredAt = at, Corrects = corrects }]);

    /// <summary>What Stripe holds for a tenant's meter (0 when it has no customer yet).</summary>
    public async Task<long> StripeTotalAsync(string tenant, string meter, long start = long.MinValue, long end = long.MaxValue)
    {
        var customer = await Host.Get<StripeCustomers>().FindAsync(tenant);
        return customer is null ? 0 : Stripe.Totals(start, end).GetValueOrDefault((customer, meter));
    }

    /// <summary>
    /// Why Stripe's total for a tenant's meter is not the ledger's: the identifiers Stripe counted more than once, and
    /// the outbox rows behind them (or every row of the lane when none was counted twice).
    /// </summary>
    public async Task<string> ExplainDifferenceAsync(string tenant, string meter, long ledger)
    {
        var customer = await Host.Get<StripeCustomers>().FindAsync(tenant);
        var counted = customer is null ? [] : Stripe.Identifiers(customer, meter);
        var twice = counted.GroupBy(i => i).Where(g => g.Count() > 1).Select(g => g.Key).ToHashSet();
        var lines = new List<string> { $"{tenant}/{meter}: ledger {ledger}, Stripe {await StripeTotalAsync(tenant, meter)}; counted more than once: [{string.Join(", ", twice)}]" };
        await using var connection = await Database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT identifier, value, status, attempts, first_attempt_at, last_attempt_at, ambiguous, last_error FROM meter_outbox WHERE tenant_id = @tenant AND meter = @meter ORDER BY id";
        Database.AddParameter(command, "tenant", tenant);
        Database.AddParameter(command, "meter", meter);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var identifier = reader.GetString(0);
            if (twice.Count == 0 || twice.Contains(identifier))
            {
                lines.Add(string.Join(" | ", Enumerable.Range(0, reader.FieldCount).Select(i => reader.IsDBNull(i) ? "null" : Convert.ToString(reader.GetValue(i), CultureInfo.InvariantCulture))));
            }
        }

        return string.Join(Environment.NewLine, lines);
    }

    public async Task<long> ScalarAsync(string sql)
    {
        await using var connection = await Database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    public async Task<string?> TextAsync(string sql)
    {
        await using var connection = await Database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return await command.ExecuteScalarAsync() as string;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var other in _others)
        {
            await other.DisposeAsync();
        }

        await Host.DisposeAsync();
        await Stripe.DisposeAsync();
    }
}
