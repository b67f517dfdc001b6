using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Provisioner.Workers;

namespace Provisioner.Messaging;

/// <summary>
/// Embedded mode's transport: commands go through an in-memory channel to the workers in the same
/// process. Cluster mode swaps this for Dapr pub/sub behind the same interface. Nothing here is durable,
/// and nothing needs to be: the control plane re-dispatches unfinished work after a restart.
/// </summary>
public sealed class InProcessCommandBus : IProvisioningCommandBus
{
    private readonly Channel<ProvisioningCommand> _commands =
        Channel.CreateUnbounded<ProvisioningCommand>(new UnboundedChannelOptions { SingleReader = true });

    internal ChannelReader<ProvisioningCommand> Commands => _commands.Reader;

    public Task SendAsync(ProvisioningCommand command, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        return _commands.Writer.WriteAsync(command, cancellationToken).AsTask();
    }
}

/// <summary>
/// Reads the in-process channel and hands each command to the worker without waiting for it, so a slow
/// instance never holds up another (the worker itself keeps one instance's commands in order). On
/// shutdown it stops reading, lets the worker abandon its steps at their next await, and waits for that.
/// </summary>
public sealed class InProcessCommandDispatcher(
    InProcessCommandBus bus,
    ProvisioningWorker worker,
    ILogger<InProcessCommandDispatcher> logger) : BackgroundService
{
    private readonly ConcurrentDictionary<Task, bool> _inFlight = new();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var command in bus.Commands.ReadAllAsync(stoppingToken))
            {
                var handling = worker.HandleAsync(command, stoppingToken);
                _inFlight.TryAdd(handling, true);
                _ = handling.ContinueWith(done => _inFlight.TryRemove(done, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutdown: the commands still queued are dispatched again by the control plane after it restarts.
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        var unfinished = _inFlight.Keys.ToArray();
        if (unfinished.Length == 0)
        {
            return;
        }

        logger.LogInformation("Waiting for {Count} provisioning commands to stop", unfinished.Length);
        try
        {
            await Task.WhenAll(unfinished).WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("Shutdown timed out with {Count} provisioning commands still running", _inFlight.Count);
        }
    }
}
