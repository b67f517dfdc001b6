using System.Diagnostics.Metrics;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace ControlPlane.Security;

/// <summary>
/// Failed authentications, counted per client address: a bad, expired or revoked API key, a wrong password. Each
/// failure takes a token from the address's bucket (<see cref="RequestRateLimitOptions.FailedAuthenticationsBurst"/>,
/// refilled at <see cref="RequestRateLimitOptions.FailedAuthenticationsPerMinute"/>); an address whose bucket is empty
/// is answered 429 before its credentials are looked at, so guessing keys or passwords is slow, while a client whose
/// credentials work is never slowed by this. Every failure is also counted in the
/// <c>controlplane.authentication.failures</c> metric.
/// </summary>
public sealed class AuthenticationFailures : IDisposable
{
    public const string MeterName = "ControlPlane.Security";

    private readonly PartitionedRateLimiter<string>? _buckets;
    private readonly Counter<long> _failures;
    private readonly TimeSpan _refill;

    public AuthenticationFailures(IOptions<RequestRateLimitOptions> options, IMeterFactory meters)
    {
        var settings = options.Value;
        _refill = TimeSpan.FromMinutes(1.0 / settings.FailedAuthenticationsPerMinute);
        if (settings.Enabled)
        {
            _buckets = PartitionedRateLimiter.Create<string, string>(address => RateLimitPartition.GetTokenBucketLimiter(address, _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = settings.FailedAuthenticationsBurst,
                TokensPerPeriod = 1,
                ReplenishmentPeriod = _refill,
                QueueLimit = 0,
                AutoReplenishment = true,
            }));
        }

        _failures = meters.Create(MeterName).CreateCounter<long>("controlplane.authentication.failures", description: "Failed authentications, by way in");
    }

    /// <summary>When this address must wait before presenting credentials again; null when it may now.</summary>
    public TimeSpan? MustWait(string address) =>
        _buckets?.GetStatistics(address) is { CurrentAvailablePermits: <= 0 } ? _refill : null;

    public void Record(string address, string way)
    {
        _failures.Add(1, new KeyValuePair<string, object?>("way", way));
        using var lease = _buckets?.AttemptAcquire(address);
    }

    public void Dispose() => _buckets?.Dispose();
}
