using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;

namespace FakeArm;

/// <summary>
/// Resource Manager's throttling of one subscription: a token bucket each for reads, writes and deletes, refilled every
/// second. The defaults are ARM's documented per-subscription, per-region buckets (reads 250 refilled at 25/s, writes and
/// deletes 200 at 10/s); a request without a token is answered 429 with <c>Retry-After</c>, and every answer carries
/// <c>x-ms-ratelimit-remaining-subscription-*</c> as ARM's do.
/// </summary>
public sealed class SubscriptionThrottle(int readBucket = 250, int readsPerSecond = 25, int writeBucket = 200, int writesPerSecond = 10) : IDisposable
{
    private readonly TokenBucketRateLimiter _reads = Bucket(readBucket, readsPerSecond);
    private readonly TokenBucketRateLimiter _writes = Bucket(writeBucket, writesPerSecond);
    private readonly TokenBucketRateLimiter _deletes = Bucket(writeBucket, writesPerSecond);

    /// <summary>Takes a token for the request, or throws ARM's 429 saying when to try again.</summary>
    internal void Take(string method, IHeaderDictionary responseHeaders)
    {
        var (kind, bucket) = method switch
        {
            "GET" or "HEAD" => ("reads", _reads),
            "DELETE" => ("deletes", _deletes),
            _ => ("writes", _writes),
        };
        using var lease = bucket.AttemptAcquire();
        responseHeaders[$"x-ms-ratelimit-remaining-subscription-{kind}"] =
            (bucket.GetStatistics()?.CurrentAvailablePermits ?? 0).ToString(CultureInfo.InvariantCulture);
        if (!lease.IsAcquired)
        {
            var wait = lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter : TimeSpan.FromSeconds(1);
            var seconds = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));
            responseHeaders.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
            throw new ArmException(429, "SubscriptionRequestsThrottled",
                $"Number of '{kind.TrimEnd('s')}' requests for subscription '{FakeArmServer.SubscriptionId}' exceeded. Please try again after '{seconds}' seconds after additional tokens are available.");
        }
    }

    public void Dispose()
    {
        _reads.Dispose();
        _writes.Dispose();
        _deletes.Dispose();
    }

    private static TokenBucketRateLimiter Bucket(int capacity, int perSecond) => new(new TokenBucketRateLimiterOptions
    {
        TokenLimit = capacity,
        TokensPerPeriod = 1,
        ReplenishmentPeriod = TimeSpan.FromSeconds(1.0 / perSecond),
        QueueLimit = 0,
        AutoReplenishment = true,
    });
}
