using ControlPlane.Hosting;
using Dapr.Client;

namespace ControlPlane.Secrets;

public static class SecretsHostingExtensions
{
    /// <summary>
    /// Envelope encryption of stored instance passwords, with its keys from a Dapr secret store (<c>Secrets:SecretStore</c>,
    /// required in cluster mode) or, embedded, from <c>&lt;dataDir&gt;/secret-keys</c>, created here on the first start.
    /// </summary>
    public static IServiceCollection AddSecretEnvelopes(this IServiceCollection services, IConfiguration configuration, DataDirectory dataDirectory, bool sharedDatabase)
    {
        var options = configuration.GetSection(SecretsOptions.SectionName).Get<SecretsOptions>() ?? new SecretsOptions();
        if (!string.IsNullOrWhiteSpace(options.SecretStore))
        {
            var store = options.SecretStore;
            services.AddSingleton<ISecretKeySource>(_ =>
            {
                var builder = new DaprClientBuilder();
                if (!string.IsNullOrWhiteSpace(options.GrpcEndpoint))
                {
                    builder.UseGrpcEndpoint(options.GrpcEndpoint);
                }

                return new DaprSecretKeySource(builder.Build(), store, options.SecretName);
            });
        }
        else if (sharedDatabase)
        {
            throw new StartupFailedException(
                $"Cluster mode needs the keys that encrypt instance passwords from a secret store every silo shares: set {SecretsOptions.SectionName}:SecretStore " +
                $"to a Dapr secret store holding '{options.SecretName}' (a value like `v1:<base64 of 32 bytes>`, from `openssl rand -base64 32`).");
        }
        else
        {
            var file = new SecretKeyFile(dataDirectory.File(SecretKeyFile.FileName));
            file.EnsureCreated();
            services.AddSingleton<ISecretKeySource>(file);
        }

        services.AddSingleton<SecretEnvelopes>();
        return services;
    }
}
