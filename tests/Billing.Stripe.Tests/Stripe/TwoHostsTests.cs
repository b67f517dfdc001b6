using Billing.Stripe.Tests.Support;
using ControlPlane.Persistence;
using FakeStripe;

namespace Billing.Stripe.Tests.Stripe;

/// <summary>Two billing hosts live on one PostgreSQL, as two silos of one cluster run them.</summary>
public sealed class TwoHostsTests
{
    private static readonly DateTimeOffset s_start = new(2026, 10, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// Both hosts create the same tenants' customers at once while Stripe keeps a failed create under its idempotency
    /// key (a 500 saved and replayed for 24 h, whether or not the create made a customer). One customer per tenant,
    /// within the hour, not a day later when the key expires.
    /// </summary>
    [Theory]
    [InlineData(FaultKind.ServerErrorDuringExecution)]
    [InlineData(FaultKind.ServerErrorAfterProcessing)]
    public async Task Two_hosts_make_one_customer_per_tenant_even_when_Stripe_keeps_a_failed_create_under_its_key(FaultKind firstCreate)
    {
        const int Tenants = 6;
        await using var scenario = await BillingScenario.StartAsync(DatabaseProvider.Postgres, s_start);
        var other = await scenario.StartAnotherHostAsync();
        var creates = 0;
        scenario.Stripe.Faults = request => request is { Method: "POST", Path: "/v1/customers" } && Interlocked.Increment(ref creates) <= Tenants
            ? new Fault(firstCreate)
            : Fault.None;
        var tenants = Enumerable.Range(0, Tenants).Select(i => $"tnt-{i}").ToList();
        foreach (var tenant in tenants)
        {
            await scenario.Host.Get<StripeCustomers>().RequestAsync(tenant, "Tenant " + tenant);
        }

        var started = scenario.Clock.GetUtcNow();
        for (var round = 0; round < 20 && (await scenario.Host.Get<StripeCustomers>().AllAsync()).Count < Tenants; round++)
        {
            await Task.WhenAll(
                scenario.Host.Get<StripeCustomers>().CreateRequestedAsync(),
                other.Get<StripeCustomers>().CreateRequestedAsync());
            scenario.Clock.Advance(TimeSpan.FromMinutes(1));
        }

        Assert.True(creates >= Tenants, $"only {creates} creates reached Stripe");
        Assert.True(scenario.Stripe.Stats.ReplayedErrors > 0, "Stripe never replayed a failed create");
        Assert.InRange(scenario.Clock.GetUtcNow() - started, TimeSpan.Zero, TimeSpan.FromHours(1));
        var customers = scenario.Stripe.Customers();
        Assert.Equal(tenants, customers.Select(c => c.Metadata["tenant_id"]).Order());
        Assert.Equal(
            customers.ToDictionary(c => c.Metadata["tenant_id"], c => c.Id),
            await other.Get<StripeCustomers>().AllAsync());
    }

    /// <summary>
    /// A claim is a lease on the host's clock, and a request can outlive it (a slow Stripe, a clock ahead on the other
    /// host). The lane is held for as long as its request is in flight, so the other host never sends the lane at once.
    /// </summary>
    [Fact]
    public async Task A_lane_whose_request_outlives_its_claim_is_not_sent_by_the_other_host_at_the_same_time()
    {
        await using var scenario = await BillingScenario.StartAsync(
            DatabaseProvider.Postgres,
            s_start,
            options => options.RequestTimeout = TimeSpan.FromSeconds(30),
            stripe: stripe => stripe.MeterEventProcessing = TimeSpan.FromSeconds(2));
        var other = await scenario.StartAnotherHostAsync();
        await scenario.AppendAsync("tnt-a", "operations", "e1", 23, s_start);
        await scenario.Host.Get<StripeCustomers>().EnsureAsync("tnt-a");
        await scenario.Host.Get<StripeMeters>().EnsureAsync("operations");
        scenario.Clock.Advance(TimeSpan.FromMinutes(66));

        var first = Task.Run(() => scenario.Worker.RunOnceAsync());
        await WaitUntilAsync(async () => await scenario.ScalarAsync("SELECT COUNT(*) FROM meter_outbox WHERE attempts = 1") == 1);
        await Task.Delay(200);
        scenario.Clock.Advance(TimeSpan.FromMinutes(10));
        var second = await other.Get<StripeBillingWorker>().RunOnceAsync();
        var firstResult = await first;

        Assert.Equal(0, second.Acknowledged + second.Rescheduled);
        Assert.Equal(1, firstResult.Acknowledged);
        Assert.Equal(0, scenario.Stripe.Stats.ConcurrencyRejections);
        Assert.Equal(23, await scenario.StripeTotalAsync("tnt-a", "operations"));
        Assert.Equal(1, await scenario.ScalarAsync("SELECT attempts FROM meter_outbox"));
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the first host never claimed the row");
            await Task.Delay(10);
        }
    }
}
