using Billing.Stripe;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Billing.Reconciliation;

/// <summary>
/// Runs the sync every <see cref="StripeSyncOptions.Interval"/> on billing's clock, on one host at a time: a lease in
/// the database (three intervals long, renewed each round) keeps the budget the cluster's, not each silo's.
/// </summary>
public sealed partial class StripeSyncService(
    StripeSync sync,
    StripeSnapshots snapshots,
    IOptions<StripeBillingOptions> options,
    TimeProvider clock,
    ILogger<StripeSyncService> logger) : BackgroundService
{
    private const string Lease = "stripe-sync";
    private readonly string _holder = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";

    /// <summary>One round, if this host holds (or takes) the lease; null when another host does.</summary>
    public async Task<StripeSyncResult?> RunOnceAsync(CancellationToken cancellationToken = default)
    {
        var now = clock.GetUtcNow();
        if (!await snapshots.TryLeaseAsync(Lease, _holder, now, now + (3 * options.Value.Sync.Interval), cancellationToken))
        {
            return null;
        }

        return await sync.SyncOnceAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.Enabled || !options.Value.BackgroundDispatch)
        {
            return;
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (await RunOnceAsync(stoppingToken) is { } result && result.Summaries + result.Invoices + result.Credits > 0)
                {
                    LogSynced(result.Summaries, result.Invoices, result.Credits);
                }
            }
            catch (Exception failure) when (failure is not OperationCanceledException)
            {
                LogSyncFailed(failure);
            }

            await Task.Delay(options.Value.Sync.Interval, clock, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Stripe sync: {Summaries} summaries, {Invoices} invoices, {Credits} balance transactions")]
    private partial void LogSynced(int summaries, int invoices, int credits);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Stripe sync failed; the next round goes on from what it stored")]
    private partial void LogSyncFailed(Exception exception);
}
