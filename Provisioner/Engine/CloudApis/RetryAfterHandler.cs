using System.Net;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace Provisioner.CloudApis;

/// <summary>
/// The resilience every HTTP call of a cloud backend goes through (Kubernetes API server, Azure Resource Manager):
/// throttling (429) and passing server trouble (5xx, a refused or dropped connection) are retried, waiting as long as
/// the server's <c>Retry-After</c> asks, with a timeout per attempt. Every request these backends send is idempotent
/// (GET, DELETE, PUT, server-side apply), so sending one again is safe. Each request is logged by method, path and
/// status only: bodies carry secrets.
/// </summary>
public sealed class RetryAfterHandler(string api, RetryAfterOptions options, ILogger logger) : DelegatingHandler
{
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline = Build(api, options, logger);

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        await _pipeline.ExecuteAsync(async token => await base.SendAsync(request, token), cancellationToken);

    private static ResiliencePipeline<HttpResponseMessage> Build(string api, RetryAfterOptions options, ILogger logger) =>
        new ResiliencePipelineBuilder<HttpResponseMessage>()
            .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                ShouldHandle = new PredicateBuilder<HttpResponseMessage>()
                    .Handle<HttpRequestException>()
                    .Handle<TimeoutRejectedException>()
                    .HandleResult(response => IsRetryable(response.StatusCode)),
                MaxRetryAttempts = options.MaxRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.BaseDelay,
                DelayGenerator = arguments => ValueTask.FromResult(RetryAfter(arguments.Outcome.Result, options.MaxRetryAfter)),
                OnRetry = arguments =>
                {
                    var request = arguments.Outcome.Result?.RequestMessage;
                    logger.LogWarning(
                        "{Api} answered {StatusCode} to {Method} {Path}; attempt {Attempt} in {DelayMs:0} ms",
                        api,
                        arguments.Outcome.Result is { } response ? (int)response.StatusCode : arguments.Outcome.Exception?.GetType().Name,
                        request?.Method.Method,
                        request?.RequestUri?.AbsolutePath,
                        arguments.AttemptNumber + 2,
                        arguments.RetryDelay.TotalMilliseconds);
                    arguments.Outcome.Result?.Dispose();
                    return ValueTask.CompletedTask;
                },
            })
            .AddTimeout(options.AttemptTimeout)
            .Build();

    private static bool IsRetryable(HttpStatusCode status) =>
        status is HttpStatusCode.TooManyRequests or HttpStatusCode.InternalServerError or HttpStatusCode.BadGateway
            or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout;

    /// <summary>The server's own wait when it gave one (capped); null lets the exponential backoff decide.</summary>
    private static TimeSpan? RetryAfter(HttpResponseMessage? response, TimeSpan cap)
    {
        var header = response?.Headers.RetryAfter;
        var wait = header?.Delta ?? (header?.Date is { } date ? date - DateTimeOffset.UtcNow : null);
        if (wait is not { } delay)
        {
            return null;
        }

        return delay < TimeSpan.Zero ? TimeSpan.Zero : delay > cap ? cap : delay;
    }
}

/// <summary>How hard a cloud backend's HTTP client retries.</summary>
public sealed class RetryAfterOptions
{
    public int MaxRetries { get; set; } = 6;
    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromMilliseconds(500);
    /// <summary>The longest <c>Retry-After</c> honoured; a longer one is cut to this, and the step's own retries take over.</summary>
    public TimeSpan MaxRetryAfter { get; set; } = TimeSpan.FromSeconds(60);
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(30);
}
