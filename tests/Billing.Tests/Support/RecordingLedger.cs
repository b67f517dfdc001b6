using System.Collections.Concurrent;
using Billing.Usage;

namespace Billing.Tests.Support;

/// <summary>
/// A test double of our own <see cref="IUsageLedger"/> until the real one lands: it keeps each source event id once,
/// as the contract says, and remembers every attempt, so a test can see replays arrive and be dropped.
/// </summary>
public sealed class RecordingLedger : IUsageLedger
{
    private readonly ConcurrentDictionary<string, UsageEvent> _accepted = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<UsageEvent> _attempts = new();

    public IReadOnlyCollection<UsageEvent> Accepted => [.. _accepted.Values];

    public IReadOnlyCollection<UsageEvent> Attempts => _attempts;

    /// <summary>When set, the next append is stored and then fails, as if the host died before the caller heard back.</summary>
    public bool FailAfterNextAppend { get; set; }

    public Task<int> AppendAsync(IReadOnlyCollection<UsageEvent> events, CancellationToken cancellationToken = default)
    {
        var added = 0;
        foreach (var usage in events)
        {
            _attempts.Enqueue(usage);
            if (_accepted.TryAdd(usage.SourceEventId, usage))
            {
                added++;
            }
        }

        if (FailAfterNextAppend)
        {
            FailAfterNextAppend = false;
            throw new IOException("The ledger stored the events but the answer was lost.");
        }

        return Task.FromResult(added);
    }

    public long Total(string meter) => _accepted.Values.Where(usage => usage.Meter == meter).Sum(usage => usage.Quantity);

    public long Quantity(string meter, DateTimeOffset hour) =>
        _accepted.Values.Where(usage => usage.Meter == meter && usage.OccurredAt == hour).Sum(usage => usage.Quantity);
}
