using ControlPlane.Tenants;

namespace ControlPlane.Provisioning;

/// <summary>
/// After a restart, activates every instance's grain at once so each one re-adopts its running process
/// (or restarts it) and resumes any operation that was in flight, instead of waiting for its reminder.
/// </summary>
public sealed partial class InstanceWakeUpService(
    IGrainFactory grains,
    IHostApplicationLifetime lifetime,
    ILogger<InstanceWakeUpService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await WhenStartedAsync(stoppingToken);
            var tenantIds = await grains.GetGrain<ITenantDirectoryGrain>(0).ListTenantIdsAsync();
            await Task.WhenAll(tenantIds.Select(id => grains.GetGrain<ITenantGrain>(id).WakeInstancesAsync()));
            LogWoken(tenantIds.Count);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception exception)
        {
            // Reminders still bring every instance back within their period; this only makes it immediate.
            LogWakeFailed(exception);
        }
    }

    private Task WhenStartedAsync(CancellationToken stoppingToken)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lifetime.ApplicationStarted.Register(() => started.TrySetResult());
        return started.Task.WaitAsync(stoppingToken);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Woke the instances of {TenantCount} tenant(s) after start-up")]
    private partial void LogWoken(int tenantCount);

    [LoggerMessage(Level = LogLevel.Error, Message = "Waking instances after start-up failed; their reminders will wake them")]
    private partial void LogWakeFailed(Exception exception);
}
