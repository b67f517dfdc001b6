using Provisioner.Messaging;
using Provisioner.Messaging.Dapr;

namespace ControlPlane.Provisioning.Dapr;

/// <summary>
/// Cluster mode's transport: commands are published to the commands topic through the Dapr sidecar, with
/// instance passwords encrypted, and the Provisioner app carries them out.
/// </summary>
public sealed class DaprCommandBus(DaprProvisioningPublisher publisher) : IProvisioningCommandBus
{
    public Task SendAsync(ProvisioningCommand command, CancellationToken cancellationToken = default) =>
        publisher.PublishCommandAsync(command, cancellationToken);
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
