using Provisioner.Messaging;

namespace Provisioner.Tests.TestSupport;

/// <summary>Stands where the control plane's grains receive events; keeps every event for assertions.</summary>
public sealed class RecordingEventSink : IProvisioningEventSink
{
    private readonly Lock _lock = new();
    private readonly List<ProvisioningEvent> _events = [];

    /// <summary>Runs inside PublishAsync, before the worker continues: lets a test act at an exact point of an operation.</summary>
    public Func<ProvisioningEvent, Task>? OnPublish { get; set; }

    public IReadOnlyList<ProvisioningEvent> Events
    {
        get
        {
            lock (_lock)
            {
                return [.. _events];
            }
        }
    }

    public async Task PublishAsync(ProvisioningEvent provisioningEvent, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            _events.Add(provisioningEvent);
        }

        if (OnPublish is { } onPublish)
        {
            await onPublish(provisioningEvent);
        }
    }

    public IReadOnlyList<ProvisioningEvent> For(string instanceId) => [.. Events.Where(e => e.InstanceId == instanceId)];

    /// <summary>Waits for the first event that matches; the timeout only keeps a broken test from hanging.</summary>
    public async Task<TEvent> WaitForAsync<TEvent>(Func<TEvent, bool> match)
        where TEvent : ProvisioningEvent
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3);
        while (DateTime.UtcNow < deadline)
        {
            if (Events.OfType<TEvent>().FirstOrDefault(match) is { } found)
            {
                return found;
            }

            await Task.Delay(20);
        }

        throw new TimeoutException($"No {typeof(TEvent).Name} matched. Events: {string.Join("; ", Events)}");
    }
}
