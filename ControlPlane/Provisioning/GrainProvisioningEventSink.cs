using ControlPlane.Instances;
using Provisioner.Messaging;

namespace ControlPlane.Provisioning;

/// <summary>Delivers a worker's event to the grain of the instance it is about; the grain decides what it means.</summary>
public sealed class GrainProvisioningEventSink(IGrainFactory grains) : IProvisioningEventSink
{
    public Task PublishAsync(ProvisioningEvent provisioningEvent, CancellationToken cancellationToken = default) =>
        grains.GetGrain<IInstanceGrain>(provisioningEvent.InstanceId).ApplyEventAsync(provisioningEvent).WaitAsync(cancellationToken);
}
