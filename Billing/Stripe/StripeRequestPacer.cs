using System.Diagnostics;

namespace Billing.Stripe;

/// <summary>
/// Keeps requests to Stripe under a rate, in real time (Stripe counts requests per wall-clock second): requests are
/// spaced evenly, never bunched, so a budget of N a second is N in any second. A 429 pauses every caller (Retry-After
/// when Stripe gives one, else a backoff that doubles, at most <paramref name="longestPause"/>: a longer wait is the
/// caller's to schedule durably), so lanes that share the host do not storm Stripe together; a 429 without Retry-After
/// (Stripe's limiter: we were too fast) also halves the rate, and each success adds back 5 %, up to the configured
/// rate. Two hosts sharing Stripe's limit settle this way just below it. Spacing alone is not enough: a caller that
/// wakes late for its slot sends closer to the next one, so the pacer also keeps the start times of the last second's
/// requests and never starts more than the rate within one second (plus <see cref="WireMargin"/>, as Stripe counts
/// arrivals, not departures).
/// </summary>
public sealed class StripeRequestPacer(double perSecond, TimeSpan longestPause, double minimumPerSecond = 1)
{
    private static readonly TimeSpan FirstPause = TimeSpan.FromMilliseconds(250);
    private static readonly long WireMargin = Stopwatch.Frequency / 20;

    private readonly Lock _gate = new();
    private readonly Queue<long> _starts = new();
    private readonly double _ceiling = perSecond;
    private double _rate = perSecond;
    private long _nextSlot;
    private int _limitedInARow;

    /// <summary>Requests a second the pacer allows now.</summary>
    public double CurrentRate
    {
        get
        {
            lock (_gate)
            {
                return _rate;
            }
        }
    }

    public async Task WaitTurnAsync(CancellationToken cancellationToken)
    {
        long wait;
        lock (_gate)
        {
            var now = Stopwatch.GetTimestamp();
            var slot = Math.Max(now, _nextSlot);
            _nextSlot = slot + (long)(Stopwatch.Frequency / _rate);
            wait = slot - now;
        }

        if (wait > 0)
        {
            await Task.Delay(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency), cancellationToken);
        }

        while (true)
        {
            lock (_gate)
            {
                var now = Stopwatch.GetTimestamp();
                var inOneSecond = (int)Math.Max(1, Math.Floor(_rate));
                while (_starts.Count > 0 && (_starts.Count > inOneSecond || now - _starts.Peek() >= Stopwatch.Frequency + WireMargin))
                {
                    _starts.Dequeue();
                }

                if (_starts.Count < inOneSecond)
                {
                    _starts.Enqueue(now);
                    return;
                }

                wait = _starts.Peek() + Stopwatch.Frequency + WireMargin - now;
            }

            await Task.Delay(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency), cancellationToken);
        }
    }

    public void Succeeded()
    {
        lock (_gate)
        {
            _limitedInARow = 0;
            _rate = Math.Min(_ceiling, _rate + Math.Max(0.1, _rate * 0.05));
        }
    }

    public void RateLimited(TimeSpan? retryAfter)
    {
        lock (_gate)
        {
            var wanted = retryAfter ?? FirstPause * Math.Pow(2, Math.Min(_limitedInARow++, 8));
            var pause = wanted < longestPause ? wanted : longestPause;
            if (retryAfter is null)
            {
                _rate = Math.Max(minimumPerSecond, _rate / 2);
            }

            _nextSlot = Math.Max(_nextSlot, Stopwatch.GetTimestamp() + (long)(pause.TotalSeconds * Stopwatch.Frequency));
        }
    }
}
