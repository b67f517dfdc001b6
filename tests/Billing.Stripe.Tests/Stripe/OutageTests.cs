using Billing.Stripe.Tests.Support;
using FakeStripe;

namespace Billing.Stripe.Tests.Stripe;

/// <summary>Stripe down for a day, Stripe back with a burst of 429s, Stripe slow to count: nothing is lost, dead-lettered or sent twice.</summary>
public sealed class OutageTests
{
    private static readonly DateTimeOffset s_start = new(2026, 10, 1, 0, 0, 0, TimeSpan.Zero);

    private static bool MeterEvents(string endpoint) => endpoint == "POST /v1/billing/meter_events";

    [Fact]
    public async Task A_day_long_outage_dead_letters_nothing_rounds_skipped_by_the_open_circuit_cost_no_attempt_and_recovery_waits_no_longer_than_the_backoff_cap()
    {
        const int Tenants = 30;
        await using var scenario = await BillingScenario.StartAsync(
            start: s_start,
            configure: options =>
            {
                options.MaxAttempts = 12;
                options.RequestsPerSecond = 500;
                options.SummaryLag = TimeSpan.FromMinutes(10);
            },
            stripe: limits => (limits.EndpointRequestsPerSecond, limits.AccountRequestsPerSecond) = (null, null));
        for (var tenant = 0; tenant < Tenants; tenant++)
        {
            await scenario.AppendAsync($"tnt-{tenant}", "operations", $"e{tenant}", tenant + 1, s_start);
            await scenario.Host.Get<StripeCustomers>().EnsureAsync($"tnt-{tenant}");
        }

        await scenario.Host.Get<StripeMeters>().EnsureAsync("operations");
        scenario.Clock.Advance(TimeSpan.FromMinutes(66));

        // A day of 5xx and resets, a round every five minutes; the breaker opens and closes in real time meanwhile.
        var outage = 0;
        scenario.Stripe.Faults = request => MeterEvents($"{request.Method} {request.Path}")
            ? new Fault(Interlocked.Increment(ref outage) % 3 == 0 ? FaultKind.ResetAfterProcessing : FaultKind.ServerError)
            : Fault.None;
        var skipped = 0;
        for (var round = 0; round < 24 * 12; round++)
        {
            if ((await scenario.Worker.RunOnceAsync()).CircuitOpen)
            {
                skipped++;
            }

            scenario.Clock.Advance(TimeSpan.FromMinutes(5));
        }

        Assert.True(skipped > 100, $"only {skipped} rounds met an open circuit");
        var sent = Volatile.Read(ref outage);
        // Rows Stripe counted before losing the answer may already be settled by the 23-hour check; none is dead.
        Assert.Equal(0, await scenario.ScalarAsync("SELECT COUNT(*) FROM meter_outbox WHERE status NOT IN ('pending', 'acknowledged')"));
        // An attempt is a request that reached Stripe; nothing the open circuit stopped counts.
        Assert.InRange(await scenario.ScalarAsync("SELECT SUM(attempts) FROM meter_outbox"), 1, sent);

        scenario.Stripe.Faults = _ => Fault.None;
        await Task.Delay(TimeSpan.FromSeconds(1));
        var recovered = scenario.Clock.GetUtcNow();
        await scenario.DrainAsync(TimeSpan.FromMinutes(1), maxRounds: 100);

        // Backoff is capped (5 minutes here, with up to half again of jitter), and the 23-hour check waits out Stripe's lag.
        Assert.InRange(scenario.Clock.GetUtcNow() - recovered, TimeSpan.Zero, TimeSpan.FromMinutes(7.5) + TimeSpan.FromMinutes(10) + TimeSpan.FromMinutes(1));
        Assert.Equal(Tenants, await scenario.ScalarAsync("SELECT COUNT(*) FROM meter_outbox WHERE status = 'acknowledged'"));
        for (var tenant = 0; tenant < Tenants; tenant++)
        {
            Assert.Equal(tenant + 1, await scenario.StripeTotalAsync($"tnt-{tenant}", "operations"));
        }
    }

    [Fact]
    public async Task A_burst_of_429s_on_recovery_costs_no_attempts_and_the_backlog_drains_in_order_without_a_storm()
    {
        const int Tenants = 8;
        const int Hours = 5;
        await using var scenario = await BillingScenario.StartAsync(start: s_start, configure: options => options.MaxAttempts = 2);
        for (var tenant = 0; tenant < Tenants; tenant++)
        {
            for (var hour = 0; hour < Hours; hour++)
            {
                await scenario.AppendAsync($"tnt-{tenant}", "operations", $"e{tenant}-{hour}", 10 + hour, s_start.AddHours(hour));
            }

            await scenario.Host.Get<StripeCustomers>().EnsureAsync($"tnt-{tenant}");
        }

        await scenario.Host.Get<StripeMeters>().EnsureAsync("operations");
        scenario.Clock.Advance(TimeSpan.FromHours(Hours) + TimeSpan.FromMinutes(6));
        var limited = 0;
        scenario.Stripe.Faults = request => MeterEvents($"{request.Method} {request.Path}") && Interlocked.Increment(ref limited) <= 100
            ? new Fault(FaultKind.RateLimited)
            : Fault.None;

        await scenario.DrainAsync(TimeSpan.FromSeconds(10), maxRounds: 200);

        Assert.Equal(Tenants * Hours, await scenario.ScalarAsync("SELECT COUNT(*) FROM meter_outbox WHERE status = 'acknowledged'"));
        // Each 429 cost one request and nothing else; every row was then sent once, lane by lane in hour order.
        Assert.Equal(100 + (Tenants * Hours), scenario.Stripe.Stats.Count(MeterEvents));
        // Under Stripe's limit in any second of arrivals. The pacer departs at 20 a second; on a loaded machine a request
        // can arrive late enough to land in the next second's count, so the bound is the limit (25), not the pace (CI saw 21).
        Assert.InRange(scenario.Stripe.Stats.PeakPerSecond(MeterEvents), 1, scenario.Stripe.Options.EndpointRequestsPerSecond!.Value);
        var eventName = scenario.Host.Get<Microsoft.Extensions.Options.IOptions<StripeBillingOptions>>().Value.EventName("operations");
        for (var tenant = 0; tenant < Tenants; tenant++)
        {
            var customer = await scenario.Host.Get<StripeCustomers>().FindAsync($"tnt-{tenant}");
            var accepted = scenario.Stripe.Identifiers(customer!, eventName);
            Assert.Equal(Hours, accepted.Count);
            Assert.Equal(accepted.Order(StringComparer.Ordinal), accepted);
            Assert.Equal(Enumerable.Range(0, Hours).Sum(hour => 10L + hour), await scenario.StripeTotalAsync($"tnt-{tenant}", "operations"));
        }
    }

    [Fact]
    public async Task After_23_hours_a_row_Stripe_is_still_counting_is_neither_resent_nor_dead_lettered()
    {
        await using var scenario = await BillingScenario.StartAsync(
            start: s_start,
            configure: options => options.InProcessRetries = 0,
            stripe: stripe => stripe.SummaryLag = TimeSpan.FromMinutes(30));
        await scenario.AppendAsync("tnt-a", "operations", "e1", 7, s_start);
        scenario.Clock.Advance(TimeSpan.FromMinutes(66));
        var first = scenario.Clock.GetUtcNow();

        // The first attempt fails at Stripe's edge; the last before the 23-hour mark is counted, but its answer is lost.
        var sent = 0;
        var fault = FaultKind.ServerError;
        scenario.Stripe.Faults = request => MeterEvents($"{request.Method} {request.Path}") && Interlocked.Increment(ref sent) > 0 ? new Fault(fault) : Fault.None;
        await scenario.Worker.RunOnceAsync();
        scenario.Clock.Advance(TimeSpan.FromHours(23) - TimeSpan.FromMinutes(10));
        fault = FaultKind.ResetAfterProcessing;
        await scenario.Worker.RunOnceAsync();
        fault = FaultKind.None;
        Assert.Equal(2, sent);

        // Past the idempotency trust, Stripe's summary does not count it yet: billing waits for the lag, then finds it counted.
        scenario.Clock.Advance(TimeSpan.FromMinutes(11));
        await scenario.DrainAsync(TimeSpan.FromMinutes(5), maxRounds: 50);

        Assert.Equal(2, sent);
        Assert.Equal("acknowledged", await scenario.TextAsync("SELECT status FROM meter_outbox"));
        Assert.Contains("counted", await scenario.TextAsync("SELECT last_error FROM meter_outbox"));
        Assert.Equal(7, await scenario.StripeTotalAsync("tnt-a", "operations"));
        Assert.True(scenario.Clock.GetUtcNow() - first > TimeSpan.FromHours(23));
    }
}
