namespace FakeStripe;

public enum FaultKind
{
    None,
    /// <summary>429 before anything runs, with <c>Retry-After</c>; nothing is recorded, nothing is saved for the idempotency key.</summary>
    RateLimited,
    /// <summary>500 before anything runs (as from Stripe's edge); nothing is recorded.</summary>
    ServerError,
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

/// <summary>Counts of what the fake saw and did, for tests to assert on.</summary>
public sealed class FakeStripeStats
{
    private long _requests;
    private long _injected;
    private long _concurrencyRejections;
    private long _idempotentReplays;
    private long _duplicateIdentifiers;

    public long Requests => Interlocked.Read(ref _requests);
    public long InjectedFaults => Interlocked.Read(ref _injected);
    public long ConcurrencyRejections => Interlocked.Read(ref _concurrencyRejections);
    public long IdempotentReplays => Interlocked.Read(ref _idempotentReplays);
    public long DuplicateIdentifiers => Interlocked.Read(ref _duplicateIdentifiers);

    internal void Request() => Interlocked.Increment(ref _requests);
    internal void Injected() => Interlocked.Increment(ref _injected);
    internal void ConcurrencyRejected() => Interlocked.Increment(ref _concurrencyRejections);
    internal void Replayed() => Interlocked.Increment(ref _idempotentReplays);
    internal void Duplicate() => Interlocked.Increment(ref _duplicateIdentifiers);
}
