using ControlPlane.Hosting;
using Dapr.Client;

namespace ControlPlane.Secrets;

public static class SecretsHostingExtensions
{
    /// <summary>
    /// Envelope encryption of stored instance passwords, with its keys from a Dapr secret store (<c>Secrets:SecretStore</c>)
    /// or a given key file (<c>Secrets:KeyFile</c>), one of which cluster mode requires; embedded, by default from
    /// <c>&lt;dataDir&gt;/secret-keys</c>, created here on the first start.
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
        else if (!string.IsNullOrWhiteSpace(options.KeyFile))
        {
            var path = Path.GetFullPath(options.KeyFile);
            services.AddSingleton<ISecretKeySource>(File.Exists(path)
                ? new SecretKeyFile(path)
                : throw new StartupFailedException(
                    $"{SecretsOptions.SectionName}:KeyFile names {path}, which does not exist. Create it with one key, mode 0600: " +
                    $"`(umask 077; echo \"v1:$(openssl rand -base64 32)\" > {path})`."));
        }
        else if (sharedDatabase)
        {
            throw new StartupFailedException(
                $"Cluster mode needs the keys that encrypt instance passwords from a place every silo shares: set {SecretsOptions.SectionName}:SecretStore " +
                $"to a Dapr secret store holding '{options.SecretName}', or {SecretsOptions.SectionName}:KeyFile to a file every silo reads (a mounted secret), " +
                "holding a value like `v1:<base64 of 32 bytes>` (from `openssl rand -base64 32`).");
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
