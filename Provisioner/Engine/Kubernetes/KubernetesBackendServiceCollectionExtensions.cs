using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Provisioner.Catalog;

namespace Provisioner.Kubernetes;

public static class KubernetesBackendServiceCollectionExtensions
{
    /// <summary>
    /// The Kubernetes backend (name <c>kubernetes</c>) when <c>Provisioner:Kubernetes:Enabled</c> is true, its options and
    /// the catalog's container values validated at start-up; nothing otherwise.
    /// </summary>
    public static IServiceCollection AddKubernetesBackend(this IServiceCollection services, IConfiguration configuration)
    {
        if (services.TryAddCloudBackend<KubernetesBackend, KubernetesBackendOptions, KubernetesBackendOptionsValidator>(configuration.GetSection(KubernetesBackendOptions.SectionName)))
        {
            services.AddSingleton<KubernetesCluster>();
        }

        return services;
    }
}
