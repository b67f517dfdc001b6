using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Provisioner.Catalog;
using Provisioner.Deployments;

namespace Provisioner.Kubernetes;

public static class KubernetesBackendServiceCollectionExtensions
{
    /// <summary>
    /// The Kubernetes backend (name <c>kubernetes</c>) when <c>Provisioner:Kubernetes:Enabled</c> is true, its options and
    /// the catalog's container values validated at start-up; nothing otherwise.
    /// </summary>
    public static IServiceCollection AddKubernetesBackend(this IServiceCollection services, IConfiguration configuration)
    {
        var section = configuration.GetSection(KubernetesBackendOptions.SectionName);
        if (!section.GetValue<bool>(nameof(KubernetesBackendOptions.Enabled)))
        {
            return services;
        }

        services.AddOptions<KubernetesBackendOptions>().Bind(section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<KubernetesBackendOptions>, KubernetesBackendOptionsValidator>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<CatalogOptions>, CloudOfferingValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<KubernetesCluster>();
        services.AddSingleton<KubernetesBackend>();
        services.AddSingleton<IDeploymentBackend>(provider => provider.GetRequiredService<KubernetesBackend>());
        return services;
    }
}
