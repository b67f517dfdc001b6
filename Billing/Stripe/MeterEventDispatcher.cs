using System.Net;
using Billing.Ledger;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;
using Stripe;

namespace Billing.Stripe;

/// <summary>What one dispatch round did.</summary>
public sealed record DispatchResult(int Acknowledged, int Rescheduled, int Rejected, int DeadLettered, int Expired, bool CircuitOpen);

/// <summary>
/// Sends the outbox to Stripe. Rows of one customer+meter form a lane sent strictly in order, one request at a time
/// (Stripe allows one concurrent meter-event call per customer and meter); lanes run in parallel.
/// <para>
/// Exactly-once in Stripe's sum rests on the identifier: every attempt of a row sends the same identifier as its
/// Idempotency-Key. Within 24 h of the first attempt, a resend after an ambiguous outcome (timeout, reset, 5xx) is
/// either replayed by the idempotency layer or refused as a duplicate identifier; both mean "counted once". Later than
/// <see cref="StripeBillingOptions.IdempotencyTrust"/>, those guarantees may have lapsed, so the row is first checked
/// against Stripe's event summary for its hour: counted → acknowledged; not counted → sent; anything else → a dead
/// letter for finance, never a guess.
/// </para>
/// </summary>
public sealed partial class MeterEventDispatcher(
    MeterEventOutbox outbox,
    StripeCustomers customers,
    StripeMeters meters,
    StripeGateway stripe,
    IOptions<StripeBillingOptions> options,
    TimeProvider clock,
    ILogger<MeterEventDispatcher> logger)
{
    private enum Outcome
    {
        Acknowledged,
        Rescheduled,
        Rejected,
        DeadLettered,
        Expired,
        CircuitOpen,
    }

    public async Task<DispatchResult> DispatchDueAsync(CancellationToken cancellationToken = default)
    {
        var settings = options.Value;
        var counts = new int[Enum.GetValues<Outcome>().Length];
        using var circuitOpen = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var heads = await outbox.DueLaneHeadsAsync(limit: 2000, cancellationToken);
        try
        {
            await Parallel.ForEachAsync(
                heads,
                new ParallelOptions { MaxDegreeOfParallelism = settings.MaxConcurrentLanes, CancellationToken = circuitOpen.Token },
                async (head, token) =>
                {
                    for (var row = head; row is not null;)
                    {
                        var claimed = await outbox.ClaimAsync(row, token);
                        if (claimed is null)
                        {
                            return;
                        }

                        var outcome = await SendAsync(claimed, token);
                        Interlocked.Increment(ref counts[(int)outcome]);
                        if (outcome == Outcome.CircuitOpen)
                        {
                            await circuitOpen.CancelAsync();
                            return;
                        }

                        if (outcome == Outcome.Rescheduled)
                        {
                            return;
                        }

                        row = await outbox.NextInLaneAsync(row.TenantId, row.Meter, token);
                    }
                });
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The circuit opened: the rows not yet claimed wait for the next round.
        }

        return new DispatchResult(
            counts[(int)Outcome.Acknowledged],
            counts[(int)Outcome.Rescheduled] + counts[(int)Outcome.CircuitOpen],
            counts[(int)Outcome.Rejected],
            counts[(int)Outcome.DeadLettered],
            counts[(int)Outcome.Expired],
            counts[(int)Outcome.CircuitOpen] > 0);
    }

    private async Task<Outcome> SendAsync(OutboxRow row, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var now = clock.GetUtcNow();
        if (row.HourStart < outbox.OldestSendableHour(now))
        {
            await outbox.ExpireAsync(row, cancellationToken);
            LogExpired(row.Identifier, row.Value);
            return Outcome.Expired;
        }

        try
        {
            var customerId = await customers.EnsureAsync(row.TenantId, cancellationToken: cancellationToken);
            var meterId = await meters.EnsureAsync(row.Meter, cancellationToken);
            if (row.Attempts > 1 && now.ToUnixTimeSeconds() - row.FirstAttemptAt >= (long)settings.IdempotencyTrust.TotalSeconds)
            {
                var counted = await stripe.EventSummaryAsync(meterId, customerId, row.HourStart, row.HourStart + UsageHours.SecondsPerHour, cancellationToken);
                var acknowledged = await outbox.AcknowledgedForHourAsync(row.TenantId, row.Meter, row.HourStart, cancellationToken);
                if (counted == acknowledged + row.Value)
                {
                    LogResolved(row.Identifier, "counted");
                    await outbox.CompleteAsync(row.Id, OutboxStatus.Acknowledged, "resolved against Stripe's event summary: counted", cancellationToken);
                    return Outcome.Acknowledged;
                }

                if (counted != acknowledged)
                {
                    var why = $"Stripe's event summary for the hour is {counted}, neither {acknowledged} (not counted) nor {acknowledged + row.Value} (counted)";
                    await outbox.CompleteAsync(row.Id, OutboxStatus.Dead, why, cancellationToken);
                    LogDeadLetter(row.Identifier, why);
                    return Outcome.DeadLettered;
                }

                LogResolved(row.Identifier, "not counted; sending");
            }

            await stripe.CreateMeterEventAsync(settings.EventName(row.Meter), customerId, row.Value, row.HourStart, row.Identifier, cancellationToken);
            await outbox.CompleteAsync(row.Id, OutboxStatus.Acknowledged, null, cancellationToken);
            return Outcome.Acknowledged;
        }
        catch (StripeException duplicate) when (StripeGateway.IsDuplicateIdentifier(duplicate))
        {
            await outbox.CompleteAsync(row.Id, OutboxStatus.Acknowledged, "Stripe already held the identifier", cancellationToken);
            return Outcome.Acknowledged;
        }
        catch (BrokenCircuitException)
        {
            await outbox.RescheduleAsync(row.Id, now + settings.CircuitBreakDuration, "circuit open after repeated Stripe failures", ambiguous: false, CancellationToken.None);
            return Outcome.CircuitOpen;
        }
        catch (StripeException limited) when (limited.HttpStatusCode == HttpStatusCode.TooManyRequests)
        {
            var wait = Backoff(row.Attempts);
            if (StripeGateway.RetryAfter(limited) is { } retryAfter && retryAfter > wait)
            {
                wait = retryAfter + Jitter(retryAfter);
            }

            return await RetryLaterAsync(row, now + wait, $"rate limited: {limited.StripeError?.Message}", ambiguous: false);
        }
        catch (StripeException denied) when (denied.HttpStatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            // Our key, not the event, is wrong: keep the row for when the configuration is fixed.
            LogUnauthorized((int)denied.HttpStatusCode);
            return await RetryLaterAsync(row, now + settings.MaxRescheduleDelay, "Stripe refused the API key", ambiguous: false);
        }
        catch (StripeException busy) when (busy.HttpStatusCode == HttpStatusCode.Conflict)
        {
            // Another request with the same idempotency key is still running (another silo, or a retry of ours): not a refusal.
            return await RetryLaterAsync(row, now + Backoff(row.Attempts), $"idempotency key in use: {busy.StripeError?.Message}", ambiguous: true);
        }
        catch (StripeException refused) when (refused.HttpStatusCode is >= HttpStatusCode.BadRequest and < HttpStatusCode.InternalServerError)
        {
            var reason = $"HTTP {(int)refused.HttpStatusCode} {refused.StripeError?.Type}/{refused.StripeError?.Code}: {refused.StripeError?.Message}";
            await outbox.CompleteAsync(row.Id, OutboxStatus.Rejected, reason, cancellationToken);
            LogRejected(row.Identifier, reason);
            return Outcome.Rejected;
        }
        catch (Exception failure) when (StripeGateway.IsTransient(failure) && !cancellationToken.IsCancellationRequested)
        {
            return await RetryLaterAsync(row, now + Backoff(row.Attempts), $"no definite answer: {failure.GetType().Name}", ambiguous: true);
        }
    }

    private async Task<Outcome> RetryLaterAsync(OutboxRow row, DateTimeOffset at, string error, bool ambiguous)
    {
        if (row.Attempts >= options.Value.MaxAttempts)
        {
            var why = $"gave up after {row.Attempts} attempts; last: {error}";
            await outbox.CompleteAsync(row.Id, OutboxStatus.Dead, why, CancellationToken.None);
            LogDeadLetter(row.Identifier, why);
            return Outcome.DeadLettered;
        }

        // Written even when the host is stopping, so the next owner sees the ambiguity and the backoff.
        await outbox.RescheduleAsync(row.Id, at, error, ambiguous, CancellationToken.None);
        return Outcome.Rescheduled;
    }

    private TimeSpan Backoff(int attempts)
    {
        var settings = options.Value;
        var exponential = settings.RescheduleDelay * Math.Pow(2, Math.Min(Math.Max(attempts - 1, 0), 16));
        var capped = exponential < settings.MaxRescheduleDelay ? exponential : settings.MaxRescheduleDelay;
        return capped + Jitter(capped);
    }

    /// <summary>Up to half again, so lanes that failed together do not retry together.</summary>
    private static TimeSpan Jitter(TimeSpan around) => around * (Random.Shared.NextDouble() / 2);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Meter event {Identifier} ({Value}) missed Stripe's 35-day window; recorded as a finance adjustment")]
    private partial void LogExpired(string identifier, long value);

    [LoggerMessage(Level = LogLevel.Information, Message = "Meter event {Identifier} resolved against Stripe's event summary: {Resolution}")]
    private partial void LogResolved(string identifier, string resolution);

    [LoggerMessage(Level = LogLevel.Error, Message = "Meter event {Identifier} moved to the dead letters: {Reason}")]
    private partial void LogDeadLetter(string identifier, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Stripe rejected meter event {Identifier}: {Reason}")]
    private partial void LogRejected(string identifier, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Stripe refused the configured API key (HTTP {Status}); meter events wait until it is fixed")]
    private partial void LogUnauthorized(int status);
}
