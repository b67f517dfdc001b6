using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Polly;
using Provisioner.Azure;
using Provisioner.Catalog;
using Provisioner.Deployments;
using Provisioner.Kubernetes;
using Provisioner.Local;
using Provisioner.Messaging;
using Provisioner.Workers;

namespace Provisioner;

public static class ProvisionerServiceCollectionExtensions
{
    /// <summary>
    /// The provisioning workers in this process with the in-process transport (embedded mode): the engine of
    /// <see cref="AddProvisioningEngine"/>, and the in-process command bus with its dispatcher. The host
    /// provides <see cref="IProvisioningEventSink"/>.
    /// </summary>
    public static IServiceCollection AddProvisioner(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddProvisioningEngine(configuration);
        services.AddSingleton<InProcessCommandBus>();
        services.AddSingleton<IProvisioningCommandBus>(provider => provider.GetRequiredService<InProcessCommandBus>());
        // Hosted services stop in reverse order of registration: the dispatcher stops before instances do.
        services.AddHostedService<InProcessCommandDispatcher>();
        return services;
    }

    /// <summary>
    /// What executes commands, whichever transport brings them: catalog, Local backend, resilience pipeline
    /// and worker. The host provides <see cref="IProvisioningEventSink"/> and delivers commands to the worker.
    /// </summary>
    public static IServiceCollection AddProvisioningEngine(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddProductCatalog(configuration);
        services.AddSingleton<IValidateOptions<CatalogOptions>, LocalLaunchTemplateValidator>();
        services.AddOptions<LocalBackendOptions>()
            .Bind(configuration.GetSection(LocalBackendOptions.SectionName))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<LocalBackendOptions>, LocalBackendOptionsValidator>();
        services.TryAddSingleton(TimeProvider.System);

        // The Local backend identifies and signals processes through /proc and setsid: Linux only. Elsewhere
        // the worker answers commands for it with an "unknown-backend" failure that names what exists.
        if (OperatingSystem.IsLinux())
        {
            services.AddSingleton<LocalIsolation>();
            services.AddHostedService(provider => provider.GetRequiredService<LocalIsolation>());
            services.AddSingleton<IDeploymentBackend, LocalBackend>();
            services.AddHostedService<LocalInstancesShutdown>();
        }

        // The cloud backends register only when their section enables them.
        services.AddKubernetesBackend(configuration);
        services.AddAzureBackend(configuration);

        services.AddResiliencePipeline(ProvisioningPipeline.Name, builder => ProvisioningPipeline.Configure(builder));
        services.AddSingleton<ProvisioningWorker>();
        return services;
    }
}
