using System.Text.Json;
using global::Dapr.Client;
using Microsoft.Extensions.Options;
using Provisioner.Messaging.Wire;

namespace Provisioner.Messaging.Dapr;

/// <summary>
/// Publishes provisioning messages through the sidecar, for both ends of the bus: commands (control plane) and
/// events (provisioner). Each is written and signed by the shared wire format, with the instance as partition key,
/// so brokers that partition keep one instance's messages together.
/// </summary>
public sealed class DaprProvisioningPublisher(
    DaprClient dapr, ProvisioningWireFormat wire, WireSecretKeyLoader keys, IOptions<DaprTransportOptions> options)
{
    public async Task PublishCommandAsync(ProvisioningCommand command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        await keys.EnsureLoadedAsync(cancellationToken);
        await PublishAsync(options.Value.CommandsTopic, command.InstanceId, wire.WriteCommand(command), cancellationToken);
    }

    public async Task PublishEventAsync(ProvisioningEvent provisioningEvent, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(provisioningEvent);
        await keys.EnsureLoadedAsync(cancellationToken);
        await PublishAsync(options.Value.EventsTopic, provisioningEvent.InstanceId, wire.WriteEvent(provisioningEvent), cancellationToken);
    }

    private Task PublishAsync(string topic, string instanceId, JsonElement data, CancellationToken cancellationToken) =>
        dapr.PublishEventAsync(
            options.Value.PubSubName,
            topic,
            data,
            new Dictionary<string, string> { ["partitionKey"] = instanceId },
            cancellationToken);
}
