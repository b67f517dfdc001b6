using ControlPlane.Hosting;
using ControlPlane.Provisioning.Dapr;
using Provisioner;
using Provisioner.Catalog;
using Provisioner.Local;
using Provisioner.Messaging;

namespace ControlPlane.Provisioning;

/// <summary>How commands reach the provisioning workers (setting <c>Provisioning:Transport</c>).</summary>
public enum ProvisioningTransport
{
    /// <summary>The workers run in this process (embedded mode, the default): nothing else to run.</summary>
    InProcess,

    /// <summary>The workers run in the Provisioner app; commands and events travel through Dapr pub/sub.</summary>
    Dapr,
}

public static class ProvisioningTransportExtensions
{
    public const string TransportSetting = "Provisioning:Transport";

    public static ProvisioningTransport TransportOf(IConfiguration configuration)
    {
        var value = configuration[TransportSetting];
        if (string.IsNullOrWhiteSpace(value))
        {
            return ProvisioningTransport.InProcess;
        }

        return Enum.TryParse<ProvisioningTransport>(value, ignoreCase: true, out var transport) && Enum.IsDefined(transport)
            ? transport
            : throw new StartupFailedException($"{TransportSetting} is '{value}'; use InProcess (the default) or Dapr.");
    }

    /// <summary>
    /// The selected transport, and the route from worker events back to grains that both share. In-process,
    /// the engine runs here over <c>&lt;dataDir&gt;/instances</c>; over Dapr, only the catalog is needed here
    /// (to validate requests) and the engine runs in the Provisioner app.
    /// </summary>
    public static IServiceCollection AddProvisioningTransport(this IServiceCollection services, IConfiguration configuration, DataDirectory dataDirectory)
    {
        switch (TransportOf(configuration))
        {
            case ProvisioningTransport.Dapr:
                services.AddProductCatalog(configuration);
                services.AddDaprCommandBus(configuration);
                break;
            default:
                services.AddProvisioner(configuration);
                services.PostConfigure<LocalBackendOptions>(local =>
                {
                    if (string.IsNullOrEmpty(local.InstancesDirectory))
                    {
                        local.InstancesDirectory = dataDirectory.File("instances");
                    }
                });
                break;
        }

        services.AddSingleton<IProvisioningEventSink, GrainProvisioningEventSink>();
        return services;
    }
}
