using System.Net;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Stripe;
using Stripe.Billing;

namespace Billing.Stripe;

/// <summary>
/// The one way billing calls Stripe: the real Stripe.net client (pointed at <c>Stripe:ApiBase</c>), without its own
/// retries, inside a Polly pipeline: short retries for rate limits and transient failures (a retry reuses the
/// request's idempotency key, so it cannot act twice), and a circuit breaker that stops calling a Stripe that keeps
/// failing. Every attempt first waits its turn on this host's <see cref="StripeRequestPacer"/> (and on a caller's
/// budget, e.g. the sync's), so the host stays under <see cref="StripeBillingOptions.RequestsPerSecond"/> and slows
/// down together when Stripe answers 429. Polly and the pacer wait in real time: they measure the network, while
/// billing's notion of "now" is the injected clock.
/// </summary>
public sealed class StripeGateway : IDisposable
{
    private readonly HttpClient _http;
    private readonly ResiliencePipeline _pipeline;
    private readonly CircuitBreakerStateProvider _circuit = new();
    private long _openUntilTicks;

    public StripeGateway(IOptions<StripeBillingOptions> options)
    {
        var settings = options.Value;
        Pacer = new StripeRequestPacer(settings.RequestsPerSecond, settings.MaxInProcessRetryAfter);
        _http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            Timeout = settings.RequestTimeout,
        };
        Client = new StripeClient(new StripeClientOptions
        {
            ApiKey = settings.ApiKey,
            ApiBase = settings.ApiBase,
            MeterEventsBase = settings.MeterEventsBase,
            HttpClient = new SystemNetHttpClient(_http, maxNetworkRetries: 0, appInfo: null, enableTelemetry: false),
        });
        var pipeline = new ResiliencePipelineBuilder { TimeProvider = TimeProvider.System };
        if (settings.InProcessRetries > 0)
        {
            pipeline.AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = settings.InProcessRetries,
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception switch
                {
                    StripeException { HttpStatusCode: HttpStatusCode.TooManyRequests } limited => (RetryAfter(limited) ?? TimeSpan.Zero) <= settings.MaxInProcessRetryAfter,
                    var failure => IsTransient(failure) && !IsReplayed(failure),
                }),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = settings.InProcessRetryDelay,
                // After a 429 the pacer holds every caller back; the retry itself need not wait on top.
                DelayGenerator = args => ValueTask.FromResult(
                    args.Outcome.Exception is StripeException { HttpStatusCode: HttpStatusCode.TooManyRequests } ? (TimeSpan?)TimeSpan.Zero : null),
            });
        }

        _pipeline = pipeline
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                FailureRatio = 0.5,
                MinimumThroughput = 20,
                SamplingDuration = settings.CircuitSamplingDuration,
                BreakDuration = settings.CircuitBreakDuration,
                StateProvider = _circuit,
                OnOpened = args =>
                {
                    Volatile.Write(ref _openUntilTicks, (TimeProvider.System.GetUtcNow() + args.BreakDuration).UtcTicks);
                    return ValueTask.CompletedTask;
                },
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is StripeException { HttpStatusCode: >= HttpStatusCode.InternalServerError }
                    or HttpRequestException or TaskCanceledException),
            })
            .Build();
    }

    public IStripeClient Client { get; }

    /// <summary>This host's pace for every request to Stripe.</summary>
    public StripeRequestPacer Pacer { get; }

    /// <summary>
    /// The breaker is open and its break not over: calls fail at once without reaching Stripe, so there is no point
    /// starting a round. (Polly reports Open until the next call after the break, which is the one that probes Stripe.)
    /// </summary>
    public bool IsCircuitOpen => _circuit.CircuitState switch
    {
        CircuitState.Isolated => true,
        CircuitState.Open => TimeProvider.System.GetUtcNow().UtcTicks < Volatile.Read(ref _openUntilTicks),
        _ => false,
    };

    /// <param name="reach">When given, learns whether any try of the call may have taken effect in Stripe.</param>
    public async Task<T> CallAsync<T>(Func<IStripeClient, CancellationToken, Task<T>> call, CancellationToken cancellationToken, StripeRequestPacer? budget = null, StripeReach? reach = null) =>
        await _pipeline.ExecuteAsync(
            async token =>
            {
                if (budget is not null)
                {
                    await budget.WaitTurnAsync(token);
                }

                await Pacer.WaitTurnAsync(token);
                try
                {
                    var result = await call(Client, token);
                    reach?.MayHaveActed = true;
                    Pacer.Succeeded();
                    return result;
                }
                catch (StripeException limited) when (limited.HttpStatusCode == HttpStatusCode.TooManyRequests)
                {
                    Pacer.RateLimited(RetryAfter(limited));
                    budget?.RateLimited(RetryAfter(limited));
                    throw;
                }
                catch (Exception failure) when (reach is not null && !IsReplayed(failure))
                {
                    // Stripe ran nothing only for a 429 or a replayed answer; any other failure may follow its effect.
                    reach.MayHaveActed = true;
                    throw;
                }
            },
            cancellationToken);

    public Task<MeterEvent> CreateMeterEventAsync(string eventName, string customerId, long value, long timestamp, string identifier, CancellationToken cancellationToken, StripeReach? reach = null) =>
        CallAsync(
            (client, token) => new MeterEventService(client).CreateAsync(
                new MeterEventCreateOptions
                {
                    EventName = eventName,
                    Identifier = identifier,
                    Timestamp = DateTimeOffset.FromUnixTimeSeconds(timestamp).UtcDateTime,
                    Payload = new Dictionary<string, string>
                    {
                        ["stripe_customer_id"] = customerId,
                        ["value"] = value.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    },
                },
                new RequestOptions { IdempotencyKey = identifier },
                token),
            cancellationToken,
            reach: reach);

    /// <summary>Stripe's aggregated value of a meter for one customer over [start, end) (minute-aligned Unix seconds).</summary>
    public async Task<long> EventSummaryAsync(string meterId, string customerId, long start, long end, CancellationToken cancellationToken, StripeRequestPacer? budget = null)
    {
        var summaries = await CallAsync(
            (client, token) => new MeterEventSummaryService(client).ListAsync(
                meterId,
                new MeterEventSummaryListOptions
                {
                    Customer = customerId,
                    StartTime = DateTimeOffset.FromUnixTimeSeconds(start).UtcDateTime,
                    EndTime = DateTimeOffset.FromUnixTimeSeconds(end).UtcDateTime,
                },
                null,
                token),
            cancellationToken,
            budget);
        return (long)summaries.Data.Sum(summary => summary.AggregatedValue);
    }

    public static TimeSpan? RetryAfter(StripeException exception) =>
        exception.StripeResponse?.Headers?.RetryAfter?.Delta;

    /// <summary>A failure after which the request may or may not have taken effect in Stripe.</summary>
    public static bool IsTransient(Exception? exception) => exception is StripeException { HttpStatusCode: >= HttpStatusCode.InternalServerError }
        or HttpRequestException or TaskCanceledException or TimeoutException
        or StripeException { InnerException: HttpRequestException or TaskCanceledException };

    /// <summary>
    /// The answer is the saved answer of an earlier request with the same idempotency key (Stripe's
    /// <c>Idempotent-Replayed</c>): a replayed 5xx says retrying under this key is pointless until the key expires.
    /// </summary>
    public static bool IsReplayed(Exception? exception) =>
        exception is StripeException { StripeResponse.Headers: { } headers }
        && headers.TryGetValues("Idempotent-Replayed", out var values)
        && values.Contains("true", StringComparer.OrdinalIgnoreCase);

    /// <summary>Stripe refuses an identifier it already holds (24 h dedupe): the event was counted once, which is what we want.</summary>
    public static bool IsDuplicateIdentifier(StripeException exception) =>
        exception.HttpStatusCode == HttpStatusCode.BadRequest
        && exception.StripeError?.Message?.StartsWith("An event already exists with identifier", StringComparison.Ordinal) == true;

    public void Dispose() => _http.Dispose();
}

/// <summary>
/// Whether any try of one call may have taken effect in Stripe. The pipeline retries inside a call, so the failure a
/// caller sees (a 429, an open circuit, a replayed 500) says nothing of the tries before it: the first may have been
/// counted before its answer was lost.
/// </summary>
public sealed class StripeReach
{
    private volatile bool _mayHaveActed;

    public bool MayHaveActed
    {
        get => _mayHaveActed;
        internal set => _mayHaveActed = value;
    }
}
