using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Provisioner.Messaging.Wire;

namespace Provisioner.Messaging.Dapr;

public static class DaprTransportServiceCollectionExtensions
{
    /// <summary>What both ends of the Dapr transport share: its options, the wire format with its key, and a DaprClient.</summary>
    public static IServiceCollection AddDaprTransport(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<DaprTransportOptions>()
            .Bind(configuration.GetSection(DaprTransportOptions.SectionName))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<DaprTransportOptions>, DaprTransportOptionsValidator>();
        services.AddSingleton<WireSecretProtector>();
        services.AddSingleton(provider => new ProvisioningWireFormat(
            provider.GetRequiredService<WireSecretProtector>(),
            provider.GetService<TimeProvider>(),
            provider.GetRequiredService<IOptions<DaprTransportOptions>>().Value.MaxClockSkew));
        services.AddSingleton<BusRefusals>();
        services.AddSingleton<WireSecretKeyLoader>();
        services.AddSingleton<DaprProvisioningPublisher>();
        services.AddDaprClient((provider, builder) =>
        {
            var endpoint = provider.GetRequiredService<IOptions<DaprTransportOptions>>().Value.GrpcEndpoint;
            if (!string.IsNullOrWhiteSpace(endpoint))
            {
                builder.UseGrpcEndpoint(endpoint);
            }
        });
        return services;
    }
}
