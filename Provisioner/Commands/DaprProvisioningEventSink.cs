using Provisioner.Messaging;
using Provisioner.Messaging.Dapr;

namespace Provisioner.Commands;

/// <summary>Publishes the worker's events to the control plane through the sidecar.</summary>
public sealed class DaprProvisioningEventSink(DaprProvisioningPublisher publisher) : IProvisioningEventSink
{
    public Task PublishAsync(ProvisioningEvent provisioningEvent, CancellationToken cancellationToken = default) =>
        publisher.PublishEventAsync(provisioningEvent, cancellationToken);
}
