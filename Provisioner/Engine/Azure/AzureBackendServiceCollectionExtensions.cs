using Azure.Core;
using Azure.Identity;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Provisioner.Catalog;

namespace Provisioner.Azure;

public static class AzureBackendServiceCollectionExtensions
{
    /// <summary>
    /// The Azure backend (name <c>azure</c>) when <c>Provisioner:Azure:Enabled</c> is true, with its options and the catalog's
    /// container values validated at start-up; nothing otherwise. It signs in as the user-assigned managed identity
    /// (<c>Provisioner:Azure:ManagedIdentityClientId</c>) unless the host registered a <see cref="TokenCredential"/> first.
    /// </summary>
    public static IServiceCollection AddAzureBackend(this IServiceCollection services, IConfiguration configuration)
    {
        if (!services.TryAddCloudBackend<AzureBackend, AzureBackendOptions, AzureBackendOptionsValidator>(configuration.GetSection(AzureBackendOptions.SectionName)))
        {
            return services;
        }

        services.TryAddSingleton<TokenCredential>(provider =>
        {
            var clientId = provider.GetRequiredService<IOptions<AzureBackendOptions>>().Value.ManagedIdentityClientId;
            return string.IsNullOrEmpty(clientId)
                ? new ManagedIdentityCredential(ManagedIdentityId.SystemAssigned)
                : new ManagedIdentityCredential(ManagedIdentityId.FromUserAssignedClientId(clientId));
        });
        services.AddSingleton<AzureResourceManager>();
        return services;
    }
}
