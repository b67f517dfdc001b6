using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;

namespace FakeKubernetes;

/// <summary>
/// The API server's refusal of a client that sends more than its share: API Priority and Fairness answers such a request
/// 429 with <c>Retry-After</c> when its priority level's seats and queues are full. The fake has no seats; it takes a
/// token per request from a bucket (by default 100, refilled at 50 per second), which is stricter than an idle API server,
/// so a client that polls in a tight loop is throttled here as it would be on a busy one.
/// </summary>
public sealed class RequestThrottle(int bucket = 100, int perSecond = 50) : IDisposable
{
    private readonly TokenBucketRateLimiter _tokens = new(new TokenBucketRateLimiterOptions
    {
        TokenLimit = bucket,
        TokensPerPeriod = 1,
        ReplenishmentPeriod = TimeSpan.FromSeconds(1.0 / perSecond),
        QueueLimit = 0,
        AutoReplenishment = true,
    });

    /// <summary>Takes a token for the request, or throws the API server's 429 saying when to try again.</summary>
    internal void Take(IHeaderDictionary responseHeaders)
    {
        using var lease = _tokens.AttemptAcquire();
        if (!lease.IsAcquired)
        {
            var wait = lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter : TimeSpan.FromSeconds(1);
            responseHeaders.RetryAfter = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            throw new ApiException(429, "TooManyRequests", "Too many requests, please try again later.");
        }
    }

    public void Dispose() => _tokens.Dispose();
}
