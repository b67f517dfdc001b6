using System.Diagnostics;

namespace FakeStripe;

public enum FaultKind
{
    None,
    /// <summary>429 before anything runs, with <c>Retry-After</c>; nothing is recorded, nothing is saved for the idempotency key.</summary>
    RateLimited,
    /// <summary>500 before the endpoint begins (as from Stripe's edge): nothing is recorded, nothing is saved.</summary>
    ServerError,
    /// <summary>The endpoint begins and fails without effect: the 500 is saved under the idempotency key and replayed for 24 h.</summary>
    ServerErrorDuringExecution,
    /// <summary>The request takes effect, then answers 500: the 500 is saved under the idempotency key and replayed for 24 h.</summary>
    ServerErrorAfterProcessing,
    /// <summary>The request runs and its result is saved under its idempotency key, then the connection is reset.</summary>
    ResetAfterProcessing,
    /// <summary>The request runs and is saved, then the answer never comes: the client times out.</summary>
    HangAfterProcessing,
}

public sealed record Fault(FaultKind Kind, int RetryAfterSeconds = 1)
{
    public static readonly Fault None = new(FaultKind.None);
}

/// <summary>What a fault plan sees of a request.</summary>
public sealed record FakeRequest(string Method, string Path, IReadOnlyDictionary<string, string> Form);

/// <summary>Counts of what the fake saw and did, and a log of every request's endpoint and answer, for tests to assert on.</summary>
public sealed class FakeStripeStats
{
    private readonly Lock _gate = new();
    private readonly List<(long Ticks, string Endpoint, int Status)> _log = [];
    private long _requests;
    private long _injected;
    private long _concurrencyRejections;
    private long _rateLimited;
    private long _idempotentReplays;
    private long _replayedErrors;
    private long _duplicateIdentifiers;

    public long Requests => Interlocked.Read(ref _requests);
    public long InjectedFaults => Interlocked.Read(ref _injected);
    /// <summary>Meter events refused because another call for the same customer and meter was in flight.</summary>
    public long ConcurrencyRejections => Interlocked.Read(ref _concurrencyRejections);
    /// <summary>Requests refused by the per-endpoint or per-account rate limits (not injected faults).</summary>
    public long RateLimited => Interlocked.Read(ref _rateLimited);
    public long IdempotentReplays => Interlocked.Read(ref _idempotentReplays);
    /// <summary>Replays of a saved 5xx: a retry under the same key that got the first execution's failure again.</summary>
    public long ReplayedErrors => Interlocked.Read(ref _replayedErrors);
    public long DuplicateIdentifiers => Interlocked.Read(ref _duplicateIdentifiers);

    /// <summary>Requests answered so far whose endpoint (e.g. <c>GET /v1/billing/meters/{id}/event_summaries</c>) matches.</summary>
    public int Count(Func<string, bool> endpoint)
    {
        lock (_gate)
        {
            return _log.Count(entry => endpoint(entry.Endpoint));
        }
    }

    /// <summary>The most requests to matching endpoints that arrived within any one second (sliding, real time).</summary>
    public int PeakPerSecond(Func<string, bool> endpoint)
    {
        List<long> ticks;
        lock (_gate)
        {
            ticks = [.. _log.Where(entry => endpoint(entry.Endpoint)).Select(entry => entry.Ticks).Order()];
        }

        var peak = 0;
        for (int first = 0, last = 0; last < ticks.Count; last++)
        {
            while (ticks[last] - ticks[first] >= Stopwatch.Frequency)
            {
                first++;
            }

            peak = Math.Max(peak, last - first + 1);
        }

        return peak;
    }

    internal void Request() => Interlocked.Increment(ref _requests);
    internal void Injected() => Interlocked.Increment(ref _injected);
    internal void ConcurrencyRejected() => Interlocked.Increment(ref _concurrencyRejections);
    internal void Limited() => Interlocked.Increment(ref _rateLimited);
    internal void Replayed(bool error)
    {
        Interlocked.Increment(ref _idempotentReplays);
        if (error)
        {
            Interlocked.Increment(ref _replayedErrors);
        }
    }

    internal void Duplicate() => Interlocked.Increment(ref _duplicateIdentifiers);

    /// <summary>Logs an answer at the time its request arrived, which is when Stripe's limiter counts it.</summary>
    internal void Answered(string endpoint, int status, long arrivedTicks)
    {
        lock (_gate)
        {
            _log.Add((arrivedTicks, endpoint, status));
        }
    }
}
