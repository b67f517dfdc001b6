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
        _stripe.MeterEventProcessing = TimeSpan.FromMilliseconds(300);
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
    public async Task Event_summaries_sum_what_was_counted_in_the_window()
    {
        var hour = new DateTimeOffset(2026, 11, 10, 9, 0, 0, TimeSpan.Zero);
        await SendAsync("s1", 7, hour);
        await SendAsync("s2", -2, hour.AddMinutes(59));
        await SendAsync("s3", 100, hour.AddHours(1));
        var meter = (await new MeterService(_client).ListAsync()).Data.Single();

        var summaries = await new MeterEventSummaryService(_client).ListAsync(meter.Id, new MeterEventSummaryListOptions
        {
            Customer = _customer,
            StartTime = hour.UtcDateTime,
            EndTime = hour.AddHours(1).UtcDateTime,
        });

        Assert.Equal(5, summaries.Data.Single().AggregatedValue);
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
