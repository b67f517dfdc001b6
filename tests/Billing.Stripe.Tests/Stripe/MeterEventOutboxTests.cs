using Billing.Ledger;
using Billing.Stripe.Tests.Support;
using FakeStripe;

namespace Billing.Stripe.Tests.Stripe;

public sealed class MeterEventOutboxTests
{
    private static readonly DateTimeOffset s_start = new(2026, 10, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Late_usage_and_corrections_are_sent_as_new_versions_whose_sum_is_the_ledger_total()
    {
        await using var scenario = await BillingScenario.StartAsync(start: s_start);
        var hour = s_start;
        await scenario.AppendAsync("tnt-a", "operations", "e1", 100, hour.AddMinutes(10));
        scenario.Clock.Advance(TimeSpan.FromMinutes(66));
        await scenario.DrainAsync(TimeSpan.FromMinutes(1));
        Assert.Equal(100, await scenario.StripeTotalAsync("tnt-a", "operations"));

        await scenario.AppendAsync("tnt-a", "operations", "e2-late", 25, hour.AddMinutes(50));
        await scenario.DrainAsync(TimeSpan.FromMinutes(1));
        await scenario.AppendAsync("tnt-a", "operations", "e1-fix", -60, hour.AddMinutes(10), corrects: "e1");
        await scenario.DrainAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(65, await scenario.StripeTotalAsync("tnt-a", "operations"));
        Assert.Equal("tnt-a:operations:2026100100:v3", await scenario.TextAsync("SELECT identifier FROM meter_outbox WHERE value = -60"));
        Assert.Equal(3, await scenario.ScalarAsync("SELECT COUNT(*) FROM meter_outbox WHERE status = 'acknowledged'"));
    }

    [Fact]
    public async Task An_hour_is_sent_only_once_it_has_closed()
    {
        await using var scenario = await BillingScenario.StartAsync(start: s_start);
        await scenario.AppendAsync("tnt-a", "operations", "e1", 7, s_start.AddMinutes(5));
        scenario.Clock.Advance(TimeSpan.FromMinutes(62));
        await scenario.Worker.RunOnceAsync();
        Assert.Equal(0, await scenario.ScalarAsync("SELECT COUNT(*) FROM meter_outbox"));

        scenario.Clock.Advance(TimeSpan.FromMinutes(4));
        await scenario.Worker.RunOnceAsync();
        Assert.Equal(7, await scenario.StripeTotalAsync("tnt-a", "operations"));
    }

    [Fact]
    public async Task Usage_too_old_for_Stripe_becomes_a_finance_adjustment_and_is_not_sent()
    {
        await using var scenario = await BillingScenario.StartAsync(start: s_start);
        await scenario.AppendAsync("tnt-a", "operations", "old", 40, s_start.AddDays(-36));
        await scenario.DrainAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(0, await scenario.StripeTotalAsync("tnt-a", "operations"));
        Assert.Equal(40, await scenario.ScalarAsync("SELECT SUM(quantity) FROM finance_adjustments WHERE reason = 'too_old_for_stripe'"));
        Assert.Equal(0, await scenario.ScalarAsync("SELECT COUNT(*) FROM meter_outbox"));
    }

    [Fact]
    public async Task A_row_still_undelivered_when_the_window_closes_expires_into_an_adjustment()
    {
        await using var scenario = await BillingScenario.StartAsync(start: s_start);
        await scenario.AppendAsync("tnt-a", "operations", "e1", 9, s_start);
        scenario.Clock.Advance(TimeSpan.FromMinutes(66));
        scenario.Stripe.Faults = request => request.Path == "/v1/billing/meter_events" ? new Fault(FaultKind.ServerError) : Fault.None;
        await scenario.Worker.RunOnceAsync();
        scenario.Clock.Advance(TimeSpan.FromDays(35));
        scenario.Stripe.Faults = _ => Fault.None;
        await scenario.DrainAsync(TimeSpan.FromMinutes(1));

        Assert.Equal("expired", await scenario.TextAsync("SELECT status FROM meter_outbox"));
        Assert.Equal(9, await scenario.ScalarAsync("SELECT SUM(quantity) FROM finance_adjustments WHERE reason = 'expired_before_delivery'"));
        Assert.Equal(0, await scenario.StripeTotalAsync("tnt-a", "operations"));
    }

    [Fact]
    public async Task A_rate_limited_row_waits_at_least_Retry_After()
    {
        await using var scenario = await BillingScenario.StartAsync(start: s_start);
        await scenario.AppendAsync("tnt-a", "operations", "e1", 3, s_start);
        scenario.Clock.Advance(TimeSpan.FromMinutes(66));
        scenario.Stripe.Faults = request => request.Path == "/v1/billing/meter_events" ? new Fault(FaultKind.RateLimited, RetryAfterSeconds: 600) : Fault.None;

        var result = await scenario.Worker.RunOnceAsync();

        Assert.Equal(1, result.Rescheduled);
        var now = scenario.Clock.GetUtcNow().ToUnixTimeSeconds();
        Assert.InRange(await scenario.ScalarAsync("SELECT next_attempt_at FROM meter_outbox"), now + 600, now + 900);
        scenario.Stripe.Faults = _ => Fault.None;
        scenario.Clock.Advance(TimeSpan.FromSeconds(599));
        Assert.Equal(0, (await scenario.Worker.RunOnceAsync()).Acknowledged);
        scenario.Clock.Advance(TimeSpan.FromSeconds(301));
        Assert.Equal(1, (await scenario.Worker.RunOnceAsync()).Acknowledged);
        Assert.Equal(3, await scenario.StripeTotalAsync("tnt-a", "operations"));
    }

    [Fact]
    public async Task A_lost_answer_is_resent_under_the_same_key_and_counted_once()
    {
        await using var scenario = await BillingScenario.StartAsync(start: s_start);
        await scenario.AppendAsync("tnt-a", "operations", "e1", 11, s_start);
        scenario.Clock.Advance(TimeSpan.FromMinutes(66));
        var failed = 0;
        scenario.Stripe.Faults = request => request.Path == "/v1/billing/meter_events" && Interlocked.Increment(ref failed) <= 2 ? new Fault(FaultKind.ResetAfterProcessing) : Fault.None;

        await scenario.DrainAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(11, await scenario.StripeTotalAsync("tnt-a", "operations"));
        Assert.True(scenario.Stripe.Stats.IdempotentReplays >= 1);
        Assert.Equal(1, await scenario.ScalarAsync("SELECT ambiguous FROM meter_outbox"));
    }

    [Theory]
    [InlineData(FaultKind.ResetAfterProcessing, 1)]
    [InlineData(FaultKind.ServerError, 2)]
    public async Task After_the_idempotency_window_an_ambiguous_row_is_checked_against_event_summaries(FaultKind firstAnswer, int expectedMeterEventCalls)
    {
        await using var scenario = await BillingScenario.StartAsync(start: s_start, configure: options => options.InProcessRetries = 0);
        await scenario.AppendAsync("tnt-a", "operations", "e1", 13, s_start);
        scenario.Clock.Advance(TimeSpan.FromMinutes(66));
        var calls = 0;
        scenario.Stripe.Faults = request =>
            request.Path == "/v1/billing/meter_events" && Interlocked.Increment(ref calls) == 1 ? new Fault(firstAnswer) : Fault.None;
        await scenario.Worker.RunOnceAsync();
        Assert.Equal(1, calls);

        // A long outage on our side: the next attempt comes 24 h later, when Stripe's dedupe can no longer be trusted.
        scenario.Clock.Advance(TimeSpan.FromHours(24));
        await scenario.DrainAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(expectedMeterEventCalls, calls);
        Assert.Equal(13, await scenario.StripeTotalAsync("tnt-a", "operations"));
        Assert.Equal("acknowledged", await scenario.TextAsync("SELECT status FROM meter_outbox"));
    }

    /// <summary>
    /// Polly retries inside one attempt: when an earlier try reached Stripe (counted, answer lost) and the retry was then
    /// stopped before Stripe acted (a 429, a replay of the first try's saved 500), the attempt is not given back as if
    /// nothing had been sent. Given back, the row looked fresh, and a resend a day later, after Stripe's dedupe had
    /// lapsed, was counted twice (the fault run caught it once as 2,405 extra operations).
    /// </summary>
    [Theory]
    [InlineData(FaultKind.ResetAfterProcessing, FaultKind.RateLimited)]
    [InlineData(FaultKind.ServerErrorAfterProcessing, FaultKind.None)]
    public async Task A_retry_stopped_after_an_earlier_try_reached_Stripe_keeps_the_row_ambiguous_and_a_day_later_it_is_not_counted_twice(FaultKind firstTry, FaultKind retry)
    {
        await using var scenario = await OneClosedHourAsync(17, options => options.InProcessRetries = 1);
        var tries = 0;
        scenario.Stripe.Faults = request => request.Path == "/v1/billing/meter_events"
            ? Interlocked.Increment(ref tries) switch { 1 => new Fault(firstTry), 2 => new Fault(retry), _ => Fault.None }
            : Fault.None;

        await scenario.Worker.RunOnceAsync();

        Assert.Equal(2, tries);
        Assert.Equal(17, await scenario.StripeTotalAsync("tnt-a", "operations"));
        Assert.Equal(1, await scenario.ScalarAsync("SELECT ambiguous FROM meter_outbox"));
        Assert.Equal(1, await scenario.ScalarAsync("SELECT attempts FROM meter_outbox"));

        // Our side is down for a day: the key's saved answer and Stripe's dedupe of the identifier both lapse.
        scenario.Clock.Advance(TimeSpan.FromHours(24) + TimeSpan.FromMinutes(5));
        await scenario.DrainAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(17, await scenario.StripeTotalAsync("tnt-a", "operations"));
        Assert.Equal(2, tries);
        Assert.Equal("acknowledged", await scenario.TextAsync("SELECT status FROM meter_outbox"));
    }

    [Fact]
    public async Task A_crash_while_a_request_is_in_flight_leaves_the_row_ambiguous_so_a_resend_a_day_later_is_checked_first()
    {
        await using var scenario = await OneClosedHourAsync(19, options => options.RequestTimeout = TimeSpan.FromSeconds(30));
        var tries = 0;
        scenario.Stripe.Faults = request => request.Path == "/v1/billing/meter_events" && Interlocked.Increment(ref tries) == 1
            ? new Fault(FaultKind.HangAfterProcessing)
            : Fault.None;

        var round = Task.Run(() => scenario.Worker.RunOnceAsync());
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (await scenario.StripeTotalAsync("tnt-a", "operations") == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.Equal(19, await scenario.StripeTotalAsync("tnt-a", "operations"));
        await scenario.RestartAsync();
        await round.ContinueWith(_ => { }, TaskScheduler.Default);
        Assert.Equal(1, await scenario.ScalarAsync("SELECT ambiguous FROM meter_outbox WHERE status = 'pending'"));

        scenario.Clock.Advance(TimeSpan.FromHours(24) + TimeSpan.FromMinutes(5));
        await scenario.DrainAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(19, await scenario.StripeTotalAsync("tnt-a", "operations"));
        Assert.Equal(1, tries);
        Assert.Equal("acknowledged", await scenario.TextAsync("SELECT status FROM meter_outbox"));
    }

    [Theory]
    [InlineData(FaultKind.ServerErrorDuringExecution)]
    [InlineData(FaultKind.ServerErrorAfterProcessing)]
    public async Task A_meter_whose_failed_create_Stripe_replays_is_made_at_once_and_only_once(FaultKind firstCreate)
    {
        await using var scenario = await BillingScenario.StartAsync(start: s_start);
        var creates = 0;
        scenario.Stripe.Faults = request => request is { Method: "POST", Path: "/v1/billing/meters" } && Interlocked.Increment(ref creates) == 1
            ? new Fault(firstCreate)
            : Fault.None;
        var meters = scenario.Host.Get<StripeMeters>();

        // The in-process retry meets the replayed 500; before, the meter (and every event) waited a day for the key to expire.
        var id = await meters.EnsureAsync("operations");

        Assert.True(scenario.Stripe.Stats.ReplayedErrors > 0, "Stripe never replayed the failed create");
        Assert.Equal([id], scenario.Stripe.Meters().Select(m => m.Id));
    }

    /// <summary>One closed hour of tnt-a's operations waiting to be sent, its customer and meter already in Stripe.</summary>
    private static async Task<BillingScenario> OneClosedHourAsync(long quantity, Action<StripeBillingOptions> configure)
    {
        var scenario = await BillingScenario.StartAsync(start: s_start, configure: configure);
        await scenario.AppendAsync("tnt-a", "operations", "e1", quantity, s_start);
        await scenario.Host.Get<StripeCustomers>().EnsureAsync("tnt-a");
        await scenario.Host.Get<StripeMeters>().EnsureAsync("operations");
        scenario.Clock.Advance(TimeSpan.FromMinutes(66));
        return scenario;
    }

    [Fact]
    public async Task A_permanent_refusal_is_kept_as_rejected_for_finance()
    {
        await using var scenario = await BillingScenario.StartAsync(start: s_start);
        // A customer id Stripe does not know: every meter event for it is refused.
        await scenario.ScalarAsync("INSERT INTO stripe_customers (tenant_id, customer_id, requested_at, created_at) VALUES ('tnt-gone', 'cus_missing', 0, 0); SELECT 1");
        await scenario.AppendAsync("tnt-gone", "operations", "e1", 5, s_start);
        scenario.Clock.Advance(TimeSpan.FromMinutes(66));

        var result = await scenario.Worker.RunOnceAsync();

        Assert.Equal(1, result.Rejected);
        Assert.Equal("rejected", await scenario.TextAsync("SELECT status FROM meter_outbox"));
        Assert.Contains("resource_missing", await scenario.TextAsync("SELECT last_error FROM meter_outbox"));
    }

    [Fact]
    public async Task Repeated_server_errors_open_the_circuit_and_the_rest_waits_in_the_outbox()
    {
        // Fast enough for 20 failures within the breaker's one-second window: this test is about the breaker, not the limits.
        await using var scenario = await BillingScenario.StartAsync(
            start: s_start,
            configure: options =>
            {
                options.CircuitBreakDuration = TimeSpan.FromSeconds(2);
                options.CircuitSamplingDuration = TimeSpan.FromSeconds(1);
                options.RequestsPerSecond = 500;
            },
            stripe: limits => (limits.EndpointRequestsPerSecond, limits.AccountRequestsPerSecond) = (null, null));
        for (var tenant = 0; tenant < 40; tenant++)
        {
            await scenario.AppendAsync($"tnt-{tenant}", "operations", $"e{tenant}", 1, s_start);
            await scenario.Host.Get<StripeCustomers>().EnsureAsync($"tnt-{tenant}");
        }

        await scenario.Host.Get<StripeMeters>().EnsureAsync("operations");
        // Let the successful customer calls leave the breaker's sampling window (real time: the breaker measures the network).
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        scenario.Clock.Advance(TimeSpan.FromMinutes(66));
        var calls = 0;
        scenario.Stripe.Faults = request =>
            request.Path == "/v1/billing/meter_events" && Interlocked.Increment(ref calls) > 0 ? new Fault(FaultKind.ServerError) : Fault.None;

        var result = await scenario.Worker.RunOnceAsync();

        Assert.True(result.CircuitOpen);
        // Without the breaker, 40 rows with one in-process retry each would be 80 calls.
        Assert.InRange(calls, 20, 40);
        Assert.Equal(40, await scenario.ScalarAsync("SELECT COUNT(*) FROM meter_outbox WHERE status = 'pending'"));

        scenario.Stripe.Faults = _ => Fault.None;
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        await scenario.DrainAsync(TimeSpan.FromMinutes(5), maxRounds: 2000);
        for (var tenant = 0; tenant < 40; tenant++)
        {
            Assert.Equal(1, await scenario.StripeTotalAsync($"tnt-{tenant}", "operations"));
        }
    }
}
