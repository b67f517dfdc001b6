using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Provisioner.Catalog;

public static class CatalogServiceCollectionExtensions
{
    /// <summary>The default catalog's file name, copied beside every application that references Provisioner.</summary>
    public const string DefaultCatalogFile = "catalog.json";

    /// <summary>
    /// Registers <see cref="ProductCatalog"/> bound to the <c>Catalog</c> section, validated at start. The
    /// default catalog (<c>catalog.json</c> beside the application) lies beneath <paramref name="configuration"/>,
    /// so an application's own settings add products or override any value of it.
    /// </summary>
    public static IServiceCollection AddProductCatalog(this IServiceCollection services, IConfiguration configuration)
    {
        var layered = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, DefaultCatalogFile), optional: true, reloadOnChange: false)
            .AddConfiguration(configuration, shouldDisposeConfiguration: false)
            .Build();
        services.AddOptions<CatalogOptions>()
            .Bind(layered.GetSection(CatalogOptions.SectionName))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<CatalogOptions>, CatalogOptionsValidator>();
        services.AddSingleton<IValidateOptions<CatalogOptions>, ContainerTemplateValidator>();
        services.AddSingleton<ProductCatalog>();
        return services;
    }
}
