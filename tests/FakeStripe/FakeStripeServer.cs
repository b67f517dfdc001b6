using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace FakeStripe;

/// <summary>
/// A stateful Stripe on a free loopback port, spoken to by the real Stripe.net client. It enforces what Stripe
/// documents for the calls billing makes: Bearer authentication, form-encoded bodies, rate limits per endpoint and per
/// account, idempotency keys (the first execution's answer, 5xx included, replayed for 24 h), meter events and their
/// rules, event summaries and invoices that trail the events by Stripe's processing lag, customers that search finds
/// only after a while, balance transactions. Each feature is in its own file. <see cref="Faults"/> injects 429s, 500s,
/// resets and hangs. Time is the injected clock (a simulated month passes in seconds), except for rate limits, which
/// are real time as Stripe's are.
/// </summary>
public sealed partial class FakeStripeServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly TimeProvider _clock;
    private readonly Lock _gate = new();
    private readonly RateLimits _limits;
    private const string ArrivedKey = "fake-stripe-arrived";
    private long _sequence;

    private FakeStripeServer(WebApplication app, TimeProvider clock, string apiKey, FakeStripeOptions options)
    {
        _app = app;
        _clock = clock;
        ApiKey = apiKey;
        Options = options;
        _limits = new RateLimits(options);
    }

    public string ApiKey { get; }

    public string BaseUrl { get; private set; } = "";

    /// <summary>Stripe's limits and lags; on by default, tunable while the server runs.</summary>
    public FakeStripeOptions Options { get; }

    public FakeStripeStats Stats { get; } = new();

    /// <summary>Decides, per request that passed the rate limits, whether to misbehave. Called before the request runs.</summary>
    public Func<FakeRequest, Fault> Faults { get; set; } = _ => Fault.None;

    public static async Task<FakeStripeServer> StartAsync(TimeProvider clock, string apiKey = "sk_test_fake_0123456789", Action<FakeStripeOptions>? configure = null)
    {
        var options = new FakeStripeOptions();
        configure?.Invoke(options);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new FakeStripeServer(app, clock, apiKey, options);
        app.Run(server.HandleAsync);
        await app.StartAsync();
        server.BaseUrl = app.Urls.First().TrimEnd('/');
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private long Now => _clock.GetUtcNow().ToUnixTimeSeconds();

    private async Task HandleAsync(HttpContext context)
    {
        context.Items[ArrivedKey] = System.Diagnostics.Stopwatch.GetTimestamp();
        Stats.Request();
        var request = context.Request;
        var path = request.Path.Value ?? "";
        var endpoint = RateLimits.Endpoint(request.Method, path);
        if (request.Headers.Authorization.ToString() != "Bearer " + ApiKey)
        {
            await WriteAsync(context, endpoint, new Answer(401, Error("invalid_request_error", null, "Invalid API Key provided.", null)));
            return;
        }

        var form = new Dictionary<string, string>(StringComparer.Ordinal);
        if (HttpMethods.IsPost(request.Method))
        {
            if (!request.HasFormContentType || request.ContentType?.StartsWith("application/x-www-form-urlencoded", StringComparison.Ordinal) != true)
            {
                await WriteAsync(context, endpoint, new Answer(400, Error("invalid_request_error", null, "Request bodies must be application/x-www-form-urlencoded.", null)));
                return;
            }

            foreach (var (key, value) in await request.ReadFormAsync())
            {
                form[key] = value.ToString();
            }
        }

        if (!_limits.TryTake(endpoint))
        {
            Stats.Limited();
            await WriteAsync(context, endpoint, new Answer(429, Error("invalid_request_error", "rate_limit", "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.", null)));
            return;
        }

        var query = request.Query.ToDictionary(q => q.Key, q => q.Value.ToString(), StringComparer.Ordinal);
        var fault = Faults(new FakeRequest(request.Method, path, HttpMethods.IsPost(request.Method) ? form : query));
        switch (fault.Kind)
        {
            case FaultKind.RateLimited:
                Stats.Injected();
                context.Response.Headers.RetryAfter = fault.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
                await WriteAsync(context, endpoint, new Answer(429, Error("invalid_request_error", "rate_limit", "Too many requests hit the API too quickly.", null)));
                return;
            case FaultKind.ServerError:
                Stats.Injected();
                await WriteAsync(context, endpoint, ServerFailure());
                return;
        }

        var answer = HttpMethods.IsPost(request.Method)
            ? await PostAsync(context, path, form, fault.Kind)
            : Get(path, query);
        if (fault.Kind is FaultKind.ResetAfterProcessing)
        {
            Stats.Injected();
            context.Abort();
            return;
        }

        if (fault.Kind is FaultKind.HangAfterProcessing)
        {
            Stats.Injected();
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
            }

            context.Abort();
            return;
        }

        if (answer.Replayed)
        {
            context.Response.Headers["Idempotent-Replayed"] = "true";
        }

        await WriteAsync(context, endpoint, answer);
    }

    private async Task<Answer> ExecutePostAsync(string path, Dictionary<string, string> form, FaultKind fault)
    {
        if (fault == FaultKind.ServerErrorDuringExecution)
        {
            Stats.Injected();
            return ServerFailure();
        }

        Answer answer;
        if (path == "/v1/billing/meter_events")
        {
            answer = await CreateMeterEventAsync(form);
        }
        else
        {
            lock (_gate)
            {
                answer = path switch
                {
                    "/v1/customers" => CreateCustomer(form),
                    "/v1/billing/meters" => CreateMeter(form),
                    _ when BalanceTransactionsPath().Match(path) is { Success: true } m => CreateBalanceTransaction(m.Groups[1].Value, form),
                    _ => NotFound(path),
                };
            }
        }

        if (fault == FaultKind.ServerErrorAfterProcessing && answer.Status is >= 200 and < 300)
        {
            Stats.Injected();
            return ServerFailure();
        }

        return answer;
    }

    private Answer Get(string path, Dictionary<string, string> query)
    {
        lock (_gate)
        {
            return path switch
            {
                "/v1/customers" => ListCustomers(query),
                "/v1/customers/search" => SearchCustomers(query),
                "/v1/billing/meters" => Page(_meters.Values.Where(m => !query.TryGetValue("status", out var s) || m.Status == s).Select(MeterJson), query, "/v1/billing/meters"),
                "/v1/invoices" => ListInvoices(query),
                _ when EventSummariesPath().Match(path) is { Success: true } m => EventSummaries(m.Groups[1].Value, query),
                _ when BalanceTransactionsPath().Match(path) is { Success: true } m => Page(_balanceTransactions.GetValueOrDefault(m.Groups[1].Value) ?? [], query, path),
                _ when CustomerPath().Match(path) is { Success: true } m => _customers.TryGetValue(m.Groups[1].Value, out var c) ? Ok(CustomerJson(c)) : Missing("customer", m.Groups[1].Value),
                _ when MeterPath().Match(path) is { Success: true } m => _meters.TryGetValue(m.Groups[1].Value, out var meter) ? Ok(MeterJson(meter)) : Missing("billing.meter", m.Groups[1].Value),
                _ when InvoicePath().Match(path) is { Success: true } m => FindInvoice(m.Groups[1].Value) is { } invoice ? Ok(invoice) : Missing("invoice", m.Groups[1].Value),
                _ => NotFound(path),
            };
        }
    }

    private string NewId(string prefix) =>
        $"{prefix}_{Interlocked.Increment(ref _sequence):x6}{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(5))}";

    private async Task WriteAsync(HttpContext context, string endpoint, Answer answer)
    {
        context.Response.StatusCode = answer.Status;
        context.Response.ContentType = "application/json";
        context.Response.Headers["Request-Id"] = "req_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(7));
        if (answer.Status == (int)HttpStatusCode.TooManyRequests || answer.Status >= 500)
        {
            context.Response.Headers["Stripe-Should-Retry"] = "true";
        }

        Stats.Answered(endpoint, answer.Status, context.Items[ArrivedKey] as long? ?? System.Diagnostics.Stopwatch.GetTimestamp());
        await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(answer.Body)));
    }
}
