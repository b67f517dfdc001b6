using Billing.Usage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Billing.Sla;

/// <summary>
/// Closes a month: assesses every instance that existed in it and stores each assessment once. Closing again answers
/// the stored assessments, so the timer, a second silo and an admin can all close the same month safely.
/// </summary>
public sealed partial class SlaMonthClose(
    LifecycleLog lifecycle,
    SlaReports reports,
    SlaAssessments assessments,
    [FromKeyedServices(BillingClock.Key)] TimeProvider clock,
    ILogger<SlaMonthClose> logger)
{
    public bool HasEnded(SlaMonth month) => month.End <= clock.GetUtcNow();

    public async Task<IReadOnlyList<SlaAssessment>> CloseAsync(SlaMonth month, CancellationToken cancellationToken = default)
    {
        if (!HasEnded(month))
        {
            throw new InvalidOperationException($"Month {month} has not ended; it cannot be closed yet.");
        }

        var closed = new List<SlaAssessment>();
        var plans = new Dictionary<string, IReadOnlyList<PlanPeriod>>(StringComparer.Ordinal);
        var assessedNow = 0;
        foreach (var timeline in await lifecycle.ReadExistingAsync(month.Start, month.End, tenantId: null, cancellationToken))
        {
            var id = SlaAssessments.IdFor(timeline.InstanceId, month);
            if (await assessments.GetAsync(id, cancellationToken) is { } stored)
            {
                closed.Add(stored);
                continue;
            }

            if (!plans.TryGetValue(timeline.TenantId, out var periods))
            {
                plans[timeline.TenantId] = periods = await reports.PlanPeriodsAsync(timeline.TenantId, month, cancellationToken);
            }

            closed.Add(await assessments.InsertOnceAsync(await reports.AssessAsync(timeline, month, periods, cancellationToken), cancellationToken));
            assessedNow++;
        }

        LogClosed(month.ToString(), closed.Count, assessedNow);
        return closed;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "SLA month {Month} closed: {Count} assessment(s), {New} new")]
    private partial void LogClosed(string month, int count, int @new);
}

/// <summary>Closes each month <see cref="SlaOptions.CloseDelay"/> after it ends, on billing's clock; after a restart it closes the last month if that was missed.</summary>
public sealed partial class SlaMonthCloseService(
    SlaMonthClose close,
    IOptions<SlaOptions> options,
    [FromKeyedServices(BillingClock.Key)] TimeProvider clock,
    ILogger<SlaMonthCloseService> logger) : BackgroundService
{
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMinutes(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var now = clock.GetUtcNow();
            var current = SlaMonth.Of(now);
            var closeAt = current.Start + options.Value.CloseDelay;
            var next = closeAt;
            if (now >= closeAt)
            {
                try
                {
                    await close.CloseAsync(current.Previous, stoppingToken);
                    next = current.End + options.Value.CloseDelay;
                }
                catch (Exception exception) when (exception is not OperationCanceledException)
                {
                    LogCloseFailed(exception, current.Previous.ToString());
                    next = now + RetryDelay;
                }
            }

            await Task.Delay(next - now, clock, stoppingToken);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Closing SLA month {Month} failed; retrying in a minute")]
    private partial void LogCloseFailed(Exception exception, string month);
}
