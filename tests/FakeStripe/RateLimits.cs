using System.Diagnostics;
using System.Text.RegularExpressions;

namespace FakeStripe;

/// <summary>
/// Stripe's rate limiter: a token bucket per endpoint and one for the account, each holding a second's worth of
/// requests and refilled continuously, in real time. A request needs a token from both; one refused is answered 429
/// and costs nothing.
/// </summary>
internal sealed partial class RateLimits(FakeStripeOptions options)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Bucket> _endpoints = new(StringComparer.Ordinal);
    private readonly Bucket _account = new();

    /// <summary>The endpoint a request counts against: its method and route, ids replaced by <c>{id}</c>.</summary>
    public static string Endpoint(string method, string path) => $"{method} {ObjectId().Replace(path, "/{id}")}";

    public bool TryTake(string endpoint)
    {
        var now = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            if (!_endpoints.TryGetValue(endpoint, out var bucket))
            {
                _endpoints[endpoint] = bucket = new Bucket();
            }

            if (!bucket.CanTake(now, options.EndpointRequestsPerSecond) || !_account.CanTake(now, options.AccountRequestsPerSecond))
            {
                return false;
            }

            bucket.Take(options.EndpointRequestsPerSecond);
            _account.Take(options.AccountRequestsPerSecond);
            return true;
        }
    }

    [GeneratedRegex("/(cus|mtr|in|il|cbtxn)_[A-Za-z0-9]+")]
    private static partial Regex ObjectId();

    private sealed class Bucket
    {
        private double _tokens = double.NaN;
        private long _at;

        public bool CanTake(long now, int? perSecond)
        {
            if (perSecond is not { } rate)
            {
                return true;
            }

            _tokens = double.IsNaN(_tokens) ? rate : Math.Min(rate, _tokens + ((now - _at) * (double)rate / Stopwatch.Frequency));
            _at = now;
            return _tokens >= 1;
        }

        public void Take(int? perSecond)
        {
            if (perSecond is not null)
            {
                _tokens--;
            }
        }
    }
}
