using System.Text.Json;
using global::Dapr.Client;
using Microsoft.Extensions.Options;
using Provisioner.Messaging;
using Provisioner.Messaging.Dapr;
using Provisioner.Messaging.Wire;

namespace ControlPlane.Provisioning.Dapr;

/// <summary>
/// Cluster mode's transport: commands are published to the commands topic through the Dapr sidecar, with
/// instance passwords encrypted, and the Provisioner app carries them out.
/// </summary>
public sealed class DaprCommandBus(
    DaprClient dapr,
    ProvisioningWireFormat wire,
    WireSecretKeyLoader keys,
    IOptions<DaprTransportOptions> options) : IProvisioningCommandBus
{
    public async Task SendAsync(ProvisioningCommand command, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        await keys.EnsureLoadedAsync(cancellationToken);
        var settings = options.Value;
        // Serialized as the base type, so the discriminator travels; brokers that partition keep one instance's commands together.
        var data = JsonSerializer.SerializeToElement(command, wire.Options);
        await dapr.PublishEventAsync(
            settings.PubSubName,
            settings.CommandsTopic,
            data,
            new Dictionary<string, string> { ["partitionKey"] = command.InstanceId },
            cancellationToken);
    }
}

public static class DaprCommandBusExtensions
{
    public static IServiceCollection AddDaprCommandBus(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddDaprTransport(configuration);
        services.AddSingleton<IProvisioningCommandBus, DaprCommandBus>();
        return services;
    }
}
