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
/// (Stripe allows one concurrent meter-event call per customer and meter); lanes run in parallel, paced by the gateway.
/// <para>
/// Exactly-once in Stripe's sum rests on the identifier: every attempt of a row sends the same identifier as its
/// Idempotency-Key. Within 24 h of the first attempt, a resend after an ambiguous outcome (timeout, reset, 5xx) is
/// either replayed by the idempotency layer or refused as a duplicate identifier; both mean "counted once". Later than
/// <see cref="StripeBillingOptions.IdempotencyTrust"/>, those guarantees may have lapsed, so an ambiguous row is first
/// checked against Stripe's event summary for its hour: counted → acknowledged; not counted → sent; but only once
/// <see cref="StripeBillingOptions.SummaryLag"/> has passed since the row was last sent, because Stripe counts
/// asynchronously: until then billing waits, never resends what Stripe may still be counting, never dead-letters it.
/// </para>
/// <para>
/// Only a request that may have reached Stripe costs an attempt. A round does not start while the circuit is open, and
/// a request the open circuit, a 429 or a replayed failure stopped gives its attempt back: a day's outage uses a
/// handful of attempts per row (backoff is capped), and the backlog drains in order at the pacer's rate afterwards.
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
    /// <summary>How long after its first execution Stripe keeps an idempotency key's answer and an identifier's dedupe.</summary>
    private static readonly TimeSpan IdempotencyWindow = TimeSpan.FromHours(24);

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
        if (stripe.IsCircuitOpen)
        {
            return new DispatchResult(0, 0, 0, 0, 0, CircuitOpen: true);
        }

        // When the circuit opens, lanes stop before their next row but requests in flight finish: cancelling one would
        // make its outcome ambiguous, and would fail the breaker's probe of a Stripe that has recovered.
        var circuitOpen = false;
        var heads = await outbox.DueLaneHeadsAsync(limit: 2000, cancellationToken);
        await Parallel.ForEachAsync(
            heads,
            new ParallelOptions { MaxDegreeOfParallelism = settings.MaxConcurrentLanes, CancellationToken = cancellationToken },
            async (head, token) =>
            {
                await using var lane = await outbox.TryLockLaneAsync(head.TenantId, head.Meter, token);
                for (var row = lane is null ? null : head; row is not null && !Volatile.Read(ref circuitOpen);)
                {
                    var claimed = await outbox.ClaimAsync(row, token);
                    if (claimed is null)
                    {
                        return;
                    }

                    var outcome = await SendAsync(row, claimed, token);
                    Interlocked.Increment(ref counts[(int)outcome]);
                    if (outcome == Outcome.CircuitOpen)
                    {
                        Volatile.Write(ref circuitOpen, true);
                        return;
                    }

                    if (outcome == Outcome.Rescheduled)
                    {
                        return;
                    }

                    row = await outbox.NextInLaneAsync(row.TenantId, row.Meter, token);
                }
            });

        return new DispatchResult(
            counts[(int)Outcome.Acknowledged],
            counts[(int)Outcome.Rescheduled] + counts[(int)Outcome.CircuitOpen],
            counts[(int)Outcome.Rejected],
            counts[(int)Outcome.DeadLettered],
            counts[(int)Outcome.Expired],
            counts[(int)Outcome.CircuitOpen] > 0);
    }

    /// <summary>Sends one claimed row; <paramref name="unclaimed"/> is the row as it was, to give the claim back.</summary>
    private async Task<Outcome> SendAsync(OutboxRow unclaimed, OutboxRow row, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var now = clock.GetUtcNow();
        var reach = new StripeReach();
        if (row.HourStart < outbox.OldestSendableHour(now))
        {
            await outbox.ExpireAsync(row, cancellationToken);
            LogExpired(row.Identifier, row.Value);
            return Outcome.Expired;
        }

        try
        {
            string customerId;
            string meterId;
            try
            {
                customerId = await customers.EnsureAsync(row.TenantId, cancellationToken: cancellationToken);
                meterId = await meters.EnsureAsync(row.Meter, cancellationToken);
            }
            catch (Exception failure) when (failure is not (BrokenCircuitException or OperationCanceledException) && (failure is StripeException || StripeGateway.IsTransient(failure)))
            {
                // Nothing of this row was sent: it waits for its customer without spending an attempt.
                await outbox.ReleaseAsync(unclaimed, now + settings.RescheduleDelay, $"its Stripe customer or meter is not ready: {failure.GetType().Name}");
                return Outcome.Rescheduled;
            }

            if (row.Ambiguous && now.ToUnixTimeSeconds() - row.FirstAttemptAt >= (long)settings.IdempotencyTrust.TotalSeconds
                && await CheckAgainstSummaryAsync(unclaimed, row, meterId, customerId, now, cancellationToken) is { } resolved)
            {
                return resolved;
            }

            await stripe.CreateMeterEventAsync(settings.EventName(row.Meter), customerId, row.Value, row.HourStart, row.Identifier, cancellationToken, reach);
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
            await GiveBackAsync(unclaimed, reach, now, "circuit open after repeated Stripe failures; not sent");
            return Outcome.CircuitOpen;
        }
        catch (StripeException limited) when (limited.HttpStatusCode == HttpStatusCode.TooManyRequests)
        {
            // Stripe ran nothing: no attempt spent. The pacer already slowed every lane down; the row is due again shortly.
            // Stripe's Retry-After is honoured as asked; without one, a short wait (our own backoffs are capped).
            var wait = StripeGateway.RetryAfter(limited) ?? settings.InProcessRetryDelay;
            wait += Jitter(wait);
            await GiveBackAsync(unclaimed, reach, now + wait, $"rate limited: {limited.StripeError?.Message}");
            return Outcome.Rescheduled;
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
        catch (Exception replayed) when (StripeGateway.IsReplayed(replayed))
        {
            // The key holds the failure of an earlier execution, replayed to every retry until it expires, 24 h after
            // that execution: only then can the summary settle it. Waiting is no attempt.
            var keyExpires = DateTimeOffset.FromUnixTimeSeconds(row.FirstAttemptAt ?? now.ToUnixTimeSeconds()) + IdempotencyWindow + settings.InProcessRetryDelay;
            var at = now + Backoff(unclaimed.Attempts);
            await GiveBackAsync(unclaimed, reach, at > keyExpires ? at : keyExpires, "Stripe replayed an earlier failure saved under the idempotency key");
            return Outcome.Rescheduled;
        }
        catch (Exception failure) when (StripeGateway.IsTransient(failure) && !cancellationToken.IsCancellationRequested)
        {
            return await RetryLaterAsync(row, now + Backoff(row.Attempts), $"no definite answer: {failure.GetType().Name}", ambiguous: true);
        }
    }

    /// <summary>
    /// Settles an ambiguous row against Stripe's summary of its hour, or answers null to send it. Every other version of
    /// the hour was acknowledged before this row's first attempt (lanes are strictly ordered), so the summary can only
    /// differ from our count by this row, or by lag while Stripe has not yet counted the last attempt.
    /// </summary>
    private async Task<Outcome?> CheckAgainstSummaryAsync(OutboxRow unclaimed, OutboxRow row, string meterId, string customerId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var counted = await stripe.EventSummaryAsync(meterId, customerId, row.HourStart, row.HourStart + UsageHours.SecondsPerHour, cancellationToken);
        var acknowledged = await outbox.AcknowledgedForHourAsync(row.TenantId, row.Meter, row.HourStart, cancellationToken);
        if (counted == acknowledged + row.Value)
        {
            LogResolved(row.Identifier, "counted");
            await outbox.CompleteAsync(row.Id, OutboxStatus.Acknowledged, "resolved against Stripe's event summary: counted", cancellationToken);
            return Outcome.Acknowledged;
        }

        var lastSent = DateTimeOffset.FromUnixTimeSeconds(unclaimed.LastAttemptAt ?? unclaimed.FirstAttemptAt ?? 0);
        if (now - lastSent < settings.SummaryLag)
        {
            LogResolved(row.Identifier, "Stripe may still be counting the last attempt; waiting");
            await outbox.ReleaseAsync(unclaimed, lastSent + settings.SummaryLag, $"Stripe's summary ({counted}) may not yet count the attempt of {lastSent:O}");
            return Outcome.Rescheduled;
        }

        if (counted != acknowledged)
        {
            var why = $"Stripe's event summary for the hour is {counted}, neither {acknowledged} (not counted) nor {acknowledged + row.Value} (counted)";
            await outbox.CompleteAsync(row.Id, OutboxStatus.Dead, why, cancellationToken);
            LogDeadLetter(row.Identifier, why);
            return Outcome.DeadLettered;
        }

        LogResolved(row.Identifier, "not counted; sending");
        return null;
    }

    /// <summary>
    /// A claim whose request Stripe never ran gives its attempt back. When an earlier try of the same call may have run
    /// (counted, then its answer lost before the retry met a 429, an open circuit or its own replayed 500), the attempt
    /// stands and the row stays ambiguous: given back, it would look unsent, and a resend after Stripe's 24-hour dedupe
    /// would be counted twice.
    /// </summary>
    private Task GiveBackAsync(OutboxRow unclaimed, StripeReach reach, DateTimeOffset at, string error) =>
        reach.MayHaveActed
            ? outbox.RescheduleAsync(unclaimed.Id, at, error + " (an earlier try may have reached Stripe)", ambiguous: true, CancellationToken.None)
            : outbox.ReleaseAsync(unclaimed, at, error);

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
        await outbox.RescheduleAsync(row.Id, at, error, row.Ambiguous || ambiguous, CancellationToken.None);
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
