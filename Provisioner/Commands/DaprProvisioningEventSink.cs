using System.Text.Json;
using Dapr.Client;
using Microsoft.Extensions.Options;
using Provisioner.Messaging;
using Provisioner.Messaging.Dapr;
using Provisioner.Messaging.Wire;

namespace Provisioner.Commands;

/// <summary>Publishes the worker's events to the control plane through the sidecar.</summary>
public sealed class DaprProvisioningEventSink(DaprClient dapr, ProvisioningWireFormat wire, IOptions<DaprTransportOptions> options) : IProvisioningEventSink
{
    public Task PublishAsync(ProvisioningEvent provisioningEvent, CancellationToken cancellationToken = default)
    {
        var settings = options.Value;
        // Serialized as the base type, so the discriminator travels; brokers that partition keep one instance's events together.
        var data = JsonSerializer.SerializeToElement(provisioningEvent, wire.Options);
        return dapr.PublishEventAsync(
            settings.PubSubName,
            settings.EventsTopic,
            data,
            new Dictionary<string, string> { ["partitionKey"] = provisioningEvent.InstanceId },
            cancellationToken);
    }
}
