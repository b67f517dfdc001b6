using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Provisioner.Deployments;

namespace Provisioner.Catalog;

/// <summary>What every cloud backend registers the same way: switched on by its section's <c>Enabled</c>, its options and the catalog's container values validated at start-up.</summary>
public static class CloudBackendRegistration
{
    /// <summary>
    /// Registers <typeparamref name="TBackend"/> as a deployment backend with its options from <paramref name="section"/>,
    /// when the section says <c>Enabled: true</c>; returns false (registering nothing) otherwise.
    /// </summary>
    public static bool TryAddCloudBackend<TBackend, TOptions, TValidator>(this IServiceCollection services, IConfigurationSection section)
        where TBackend : class, IDeploymentBackend
        where TOptions : class
        where TValidator : class, IValidateOptions<TOptions>
    {
        if (!section.GetValue<bool>("Enabled"))
        {
            return false;
        }

        services.AddOptions<TOptions>().Bind(section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<TOptions>, TValidator>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<CatalogOptions>, CloudOfferingValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<TBackend>();
        services.AddSingleton<IDeploymentBackend>(provider => provider.GetRequiredService<TBackend>());
        return true;
    }
}
