using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Provisioner.Messaging;

namespace ControlPlane.Tests.Support;

/// <summary>The real in-process bus, with a record of every command that went through it to the provisioning engine.</summary>
public sealed class RecordingCommandBus(InProcessCommandBus inner) : IProvisioningCommandBus
{
    private readonly ConcurrentQueue<ProvisioningCommand> _sent = new();

    public IReadOnlyList<ProvisioningCommand> Sent => [.. _sent];

    /// <summary>The commands of <paramref name="instanceId"/> that served an operation or its rollback (not a reconcile's checks).</summary>
    public IReadOnlyList<ProvisioningCommand> ForOperations(string instanceId) =>
        [.. _sent.Where(command => command.InstanceId == instanceId && command.OperationId is not null)];

    public async Task SendAsync(ProvisioningCommand command, CancellationToken cancellationToken = default)
    {
        _sent.Enqueue(command);
        await inner.SendAsync(command, cancellationToken);
    }

    /// <summary>Puts the recorder in front of the in-process bus the grains use.</summary>
    public static void Register(IServiceCollection services) =>
        services.AddSingleton<IProvisioningCommandBus>(provider => provider.GetRequiredService<RecordingCommandBus>())
            .AddSingleton(provider => new RecordingCommandBus(provider.GetRequiredService<InProcessCommandBus>()));
}
