using System.Net;
using Billing.Stripe.Tests.Support;
using FakeStripe;
using Microsoft.Extensions.Time.Testing;
using Stripe;
using Stripe.Billing;

namespace Billing.Stripe.Tests.Stripe;

/// <summary>The fake is only worth its tests if it refuses what Stripe refuses: each rule, through the real Stripe.net client.</summary>
public sealed class FakeStripeRulesTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _clock = TestDatabases.Clock(new DateTimeOffset(2026, 11, 10, 12, 0, 0, TimeSpan.Zero));
    private FakeStripeServer _stripe = null!;
    private StripeClient _client = null!;
    private string _customer = "";

    public async Task InitializeAsync()
    {
        _stripe = await FakeStripeServer.StartAsync(_clock);
        _client = Client(_stripe.ApiKey);
        _customer = (await new CustomerService(_client).CreateAsync(new CustomerCreateOptions { Name = "Acme" })).Id;
        await new MeterService(_client).CreateAsync(new MeterCreateOptions
        {
            DisplayName = "Operations",
            EventName = "operations",
            DefaultAggregation = new MeterDefaultAggregationOptions { Formula = "sum" },
        });
    }

    public async Task DisposeAsync() => await _stripe.DisposeAsync();

    [Fact]
    public async Task A_wrong_api_key_is_refused()
    {
        var failure = await Assert.ThrowsAsync<StripeException>(() => new CustomerService(Client("sk_test_wrong")).CreateAsync(new CustomerCreateOptions()));
        Assert.Equal(HttpStatusCode.Unauthorized, failure.HttpStatusCode);
    }

    [Theory]
    [InlineData(null, "25", "event_name")]
    [InlineData("operations", null, "payload[value]")]
    [InlineData("operations", "2.5", "payload[value]")]
    [InlineData("operations", "ten", "payload[value]")]
    [InlineData("unknown_meter", "1", "event_name")]
    public async Task A_meter_event_without_its_required_fields_is_refused(string? eventName, string? value, string param)
    {
        var payload = new Dictionary<string, string> { ["stripe_customer_id"] = _customer };
        if (value is not null)
        {
            payload["value"] = value;
        }

        var failure = await Assert.ThrowsAsync<StripeException>(() => new MeterEventService(_client).CreateAsync(new MeterEventCreateOptions { EventName = eventName!, Payload = payload }));
        Assert.Equal(HttpStatusCode.BadRequest, failure.HttpStatusCode);
        Assert.Equal(param, failure.StripeError.Param);
    }

    [Fact]
    public async Task A_repeated_identifier_within_24_hours_is_refused_and_counted_once()
    {
        await SendAsync("id-1", 5);
        var duplicate = await Assert.ThrowsAsync<StripeException>(() => SendAsync("id-1", 5));
        Assert.True(global::Billing.Stripe.StripeGateway.IsDuplicateIdentifier(duplicate));

        _clock.Advance(TimeSpan.FromHours(24));
        await SendAsync("id-1", 5, timestamp: _clock.GetUtcNow());
        Assert.Equal(10, _stripe.Totals()[(_customer, "operations")]);
    }

    [Fact]
    public async Task Timestamps_outside_35_days_back_or_5_minutes_ahead_are_refused()
    {
        var now = _clock.GetUtcNow();
        await SendAsync("edge-old", 1, now.AddDays(-35).AddMinutes(1));
        await SendAsync("edge-new", 1, now.AddMinutes(5));
        Assert.Equal(HttpStatusCode.BadRequest, (await Assert.ThrowsAsync<StripeException>(() => SendAsync("too-old", 1, now.AddDays(-35).AddMinutes(-1)))).HttpStatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await Assert.ThrowsAsync<StripeException>(() => SendAsync("too-new", 1, now.AddMinutes(6)))).HttpStatusCode);
    }

    [Fact]
    public async Task An_idempotency_key_replays_the_first_answer_and_refuses_other_parameters()
    {
        var options = new RequestOptions { IdempotencyKey = "key-1" };
        var first = await new CustomerService(_client).CreateAsync(new CustomerCreateOptions { Name = "Once" }, options);
        var again = await new CustomerService(_client).CreateAsync(new CustomerCreateOptions { Name = "Once" }, options);
        var different = await Assert.ThrowsAsync<StripeException>(() => new CustomerService(_client).CreateAsync(new CustomerCreateOptions { Name = "Other" }, options));

        Assert.Equal(first.Id, again.Id);
        Assert.Equal("idempotency_error", different.StripeError.Type);
        Assert.Equal(2, _stripe.Customers().Count);
    }

    [Fact]
    public async Task A_second_concurrent_meter_event_for_the_same_customer_and_meter_is_rate_limited()
    {
        // On by default: each meter event holds its customer+meter slot while Stripe processes it.
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(async i =>
        {
            try
            {
                await SendAsync($"concurrent-{i}", 1);
                return HttpStatusCode.OK;
            }
            catch (StripeException failure)
            {
                return failure.HttpStatusCode;
            }
        }));

        Assert.Contains(HttpStatusCode.OK, results);
        Assert.Contains(HttpStatusCode.TooManyRequests, results);
        Assert.Equal(results.Count(r => r == HttpStatusCode.OK), _stripe.Totals()[(_customer, "operations")]);
    }

    [Fact]
    public async Task Event_summaries_sum_what_was_counted_in_the_window_once_Stripe_has_processed_it()
    {
        var hour = new DateTimeOffset(2026, 11, 10, 9, 0, 0, TimeSpan.Zero);
        await SendAsync("s1", 7, hour);
        await SendAsync("s2", -2, hour.AddMinutes(59));
        await SendAsync("s3", 100, hour.AddHours(1));
        var meter = (await new MeterService(_client).ListAsync()).Data.Single();
        Task<decimal> SummaryAsync() => new MeterEventSummaryService(_client).ListAsync(meter.Id, new MeterEventSummaryListOptions
        {
            Customer = _customer,
            StartTime = hour.UtcDateTime,
            EndTime = hour.AddHours(1).UtcDateTime,
        }).ContinueWith(t => t.Result.Data.Single().AggregatedValue, TaskScheduler.Default);

        Assert.Equal(0, await SummaryAsync());
        _clock.Advance(_stripe.Options.SummaryLag - TimeSpan.FromSeconds(1));
        Assert.Equal(0, await SummaryAsync());
        _clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(5, await SummaryAsync());
    }

    [Fact]
    public async Task An_invoice_finalized_within_the_lag_leaves_the_latest_usage_off()
    {
        var hour = new DateTimeOffset(2026, 11, 10, 9, 0, 0, TimeSpan.Zero);
        await SendAsync("early", 7, hour);
        _clock.Advance(_stripe.Options.SummaryLag);
        await SendAsync("late", 5, hour);

        var id = _stripe.FinalizeInvoice(_customer, hour.ToUnixTimeSeconds(), hour.AddHours(1).ToUnixTimeSeconds(), new Dictionary<string, string> { ["operations"] = "price_ops" });

        var invoice = await new InvoiceService(_client).GetAsync(id);
        Assert.Equal(7, invoice.Lines.Data.Single().Quantity);
        Assert.Equal(12, _stripe.Totals()[(_customer, "operations")]);
    }

    [Fact]
    public async Task Search_finds_a_new_customer_only_after_its_lag_while_the_list_sees_it_at_once()
    {
        var created = await new CustomerService(_client).CreateAsync(new CustomerCreateOptions { Metadata = new Dictionary<string, string> { ["tenant_id"] = "tnt-new" } });
        var search = new CustomerSearchOptions { Query = "metadata['tenant_id']:'tnt-new'" };

        Assert.Empty((await new CustomerService(_client).SearchAsync(search)).Data);
        var listed = await new CustomerService(_client).ListAsync(new CustomerListOptions { Created = new DateRangeOptions { GreaterThanOrEqual = _clock.GetUtcNow().UtcDateTime } });
        Assert.Equal(created.Id, listed.Data.First().Id);
        _clock.Advance(_stripe.Options.SearchLag);
        Assert.Equal(created.Id, (await new CustomerService(_client).SearchAsync(search)).Data.Single().Id);
    }

    [Theory]
    [InlineData(FaultKind.ServerErrorDuringExecution, 1)]
    [InlineData(FaultKind.ServerErrorAfterProcessing, 2)]
    public async Task A_500_from_a_request_that_began_is_replayed_under_its_key_for_24_hours(FaultKind fault, int customersAfterwards)
    {
        var calls = 0;
        _stripe.Faults = request => request.Method == "POST" && request.Path == "/v1/customers" && Interlocked.Increment(ref calls) == 1 ? new Fault(fault) : Fault.None;
        var options = new RequestOptions { IdempotencyKey = "burnt" };
        Task<Customer> CreateAsync() => new CustomerService(_client).CreateAsync(new CustomerCreateOptions { Name = "Again" }, options);

        Assert.Equal(HttpStatusCode.InternalServerError, (await Assert.ThrowsAsync<StripeException>(CreateAsync)).HttpStatusCode);
        _clock.Advance(TimeSpan.FromHours(23));
        var replayed = await Assert.ThrowsAsync<StripeException>(CreateAsync);
        Assert.Equal(HttpStatusCode.InternalServerError, replayed.HttpStatusCode);
        Assert.Equal("true", replayed.StripeResponse.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, _stripe.Stats.ReplayedErrors);
        Assert.Equal(customersAfterwards, _stripe.Customers().Count);

        _clock.Advance(TimeSpan.FromHours(1));
        await CreateAsync();
        Assert.Equal(customersAfterwards + 1, _stripe.Customers().Count);
    }

    [Fact]
    public async Task A_500_before_the_request_began_is_not_saved()
    {
        var calls = 0;
        _stripe.Faults = request => request.Method == "POST" && Interlocked.Increment(ref calls) == 1 ? new Fault(FaultKind.ServerError) : Fault.None;
        var options = new RequestOptions { IdempotencyKey = "edge" };

        await Assert.ThrowsAsync<StripeException>(() => new CustomerService(_client).CreateAsync(new CustomerCreateOptions { Name = "Edge" }, options));
        await new CustomerService(_client).CreateAsync(new CustomerCreateOptions { Name = "Edge" }, options);

        Assert.Equal(0, _stripe.Stats.IdempotentReplays);
        Assert.Equal(2, _stripe.Customers().Count);
    }

    [Fact]
    public async Task Each_endpoint_allows_25_requests_a_second_and_answers_429_beyond()
    {
        _stripe.Options.AccountRequestsPerSecond = null;
        var statuses = await Task.WhenAll(Enumerable.Range(0, 60).Select(_ => StatusAsync(() => new CustomerService(_client).GetAsync(_customer))));
        var other = await StatusAsync(() => new MeterService(_client).ListAsync());

        Assert.InRange(statuses.Count(s => s == HttpStatusCode.OK), 25, 35);
        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
        Assert.Equal(HttpStatusCode.OK, other);
        Assert.Equal(statuses.Count(s => s == HttpStatusCode.TooManyRequests), _stripe.Stats.RateLimited);
    }

    [Fact]
    public async Task The_account_allows_25_requests_a_second_across_endpoints()
    {
        var statuses = await Task.WhenAll(Enumerable.Range(0, 60).Select(i => StatusAsync(() => i % 2 == 0
            ? new CustomerService(_client).GetAsync(_customer)
            : (Task)new MeterService(_client).ListAsync())));

        // Setting up used two of the second's 25.
        Assert.InRange(statuses.Count(s => s == HttpStatusCode.OK), 23, 35);
        Assert.True(_stripe.Stats.RateLimited > 0);
    }

    private static async Task<HttpStatusCode> StatusAsync(Func<Task> call)
    {
        try
        {
            await call();
            return HttpStatusCode.OK;
        }
        catch (StripeException failure)
        {
            return failure.HttpStatusCode;
        }
    }

    private Task<MeterEvent> SendAsync(string identifier, long value, DateTimeOffset? timestamp = null) =>
        new MeterEventService(_client).CreateAsync(new MeterEventCreateOptions
        {
            EventName = "operations",
            Identifier = identifier,
            Timestamp = (timestamp ?? _clock.GetUtcNow()).UtcDateTime,
            Payload = new Dictionary<string, string> { ["stripe_customer_id"] = _customer, ["value"] = value.ToString(System.Globalization.CultureInfo.InvariantCulture) },
        });

    private StripeClient Client(string apiKey) => new(new StripeClientOptions
    {
        ApiKey = apiKey,
        ApiBase = _stripe.BaseUrl,
        MeterEventsBase = _stripe.BaseUrl,
        HttpClient = new SystemNetHttpClient(new HttpClient(), maxNetworkRetries: 0),
    });
}
