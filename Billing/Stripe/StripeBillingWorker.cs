using Billing.Credits;
using ControlPlane.Persistence;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Billing.Stripe;

/// <summary>
/// The Stripe side of billing, round after round: create the customers onboarding asked for, move closed hours into
/// the outbox, send what is due. Every step is idempotent, so rounds may overlap across silos or repeat after a crash.
/// </summary>
public sealed partial class StripeBillingWorker(
    StripeCustomers customers,
    StripeMeters meters,
    MeterEventOutbox outbox,
    MeterEventDispatcher dispatcher,
    SlaCredits credits,
    IEnumerable<ISlaAssessmentSource> assessments,
    IOptions<StripeBillingOptions> options,
    TimeProvider clock,
    ILogger<StripeBillingWorker> logger) : BackgroundService
{
    private DateTimeOffset _creditsCheckedAt = DateTimeOffset.MinValue;

    public async Task<DispatchResult> RunOnceAsync(CancellationToken cancellationToken = default)
    {
        await customers.CreateRequestedAsync(cancellationToken);
        await ApplyClosedMonthCreditsAsync(cancellationToken);
        await outbox.EnqueueClosedHoursAsync(cancellationToken);
        return await dispatcher.DispatchDueAsync(cancellationToken);
    }

    /// <summary>
    /// Month close: the SLA credits of every closed month not yet applied, from whatever stores assessments, applied to
    /// Stripe; not only the last month's, since a month may be closed late or Stripe may be down across a month's end.
    /// Each is applied once whatever the number of calls, so this simply runs every
    /// <see cref="StripeBillingOptions.CreditInterval"/>; a failure is logged and retried next time, and never holds up
    /// the meter events.
    /// </summary>
    private async Task ApplyClosedMonthCreditsAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        if (now - _creditsCheckedAt < options.Value.CreditInterval)
        {
            return;
        }

        var current = new DateOnly(now.Year, now.Month, 1);
        try
        {
            foreach (var source in assessments)
            {
                foreach (var month in (await source.MonthsWithCreditsAsync(cancellationToken)).Where(month => month < current))
                {
                    await credits.ApplyMonthAsync(source, month, cancellationToken);
                }
            }

            _creditsCheckedAt = now;
        }
        catch (Exception failure) when (failure is not OperationCanceledException)
        {
            LogCreditsFailed(failure);
        }
    }

    /// <summary>The configured meters exist in Stripe before anything is sent (others are created on first use).</summary>
    public async Task EnsureConfiguredMetersAsync(CancellationToken cancellationToken = default)
    {
        foreach (var meter in options.Value.Meters.Keys)
        {
            await meters.EnsureAsync(meter, cancellationToken);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.Enabled || !options.Value.BackgroundDispatch)
        {
            LogDisabled();
            return;
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await EnsureConfiguredMetersAsync(stoppingToken);
                var result = await RunOnceAsync(stoppingToken);
                if (result.Rescheduled + result.Rejected + result.DeadLettered + result.Expired > 0)
                {
                    LogRound(result.Acknowledged, result.Rescheduled, result.Rejected, result.DeadLettered, result.Expired);
                }
            }
            catch (Exception failure) when (failure is not OperationCanceledException)
            {
                LogRoundFailed(failure);
            }

            await Task.Delay(options.Value.DispatchInterval, clock, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Stripe billing is not sending (no Stripe:ApiKey, or Stripe:BackgroundDispatch is false)")]
    private partial void LogDisabled();

    [LoggerMessage(Level = LogLevel.Information, Message = "Stripe round: {Acknowledged} acknowledged, {Rescheduled} rescheduled, {Rejected} rejected, {Dead} dead-lettered, {Expired} expired")]
    private partial void LogRound(int acknowledged, int rescheduled, int rejected, int dead, int expired);

    [LoggerMessage(Level = LogLevel.Error, Message = "Applying closed months' SLA credits failed; the next round retries")]
    private partial void LogCreditsFailed(Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Stripe round failed; the next round retries")]
    private partial void LogRoundFailed(Exception exception);
}
