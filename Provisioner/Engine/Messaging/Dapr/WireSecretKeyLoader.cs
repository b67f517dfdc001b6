using global::Dapr.Client;
using Microsoft.Extensions.Options;
using Provisioner.Messaging.Wire;

namespace Provisioner.Messaging.Dapr;

/// <summary>
/// Loads the password-encryption key into <see cref="WireSecretProtector"/> before the first message is
/// written or read: from configuration, or through the sidecar's secret API (so in a cluster it lives in
/// the platform's secret store, never in a config file).
/// </summary>
public sealed class WireSecretKeyLoader(DaprClient dapr, IOptions<DaprTransportOptions> options, WireSecretProtector protector) : IDisposable
{
    private readonly SemaphoreSlim _loading = new(1, 1);

    public async Task EnsureLoadedAsync(CancellationToken cancellationToken)
    {
        if (protector.HasKey)
        {
            return;
        }

        await _loading.WaitAsync(cancellationToken);
        try
        {
            if (!protector.HasKey)
            {
                protector.UseKey(await ReadKeyAsync(cancellationToken));
            }
        }
        finally
        {
            _loading.Release();
        }
    }

    public void Dispose() => _loading.Dispose();

    private async Task<byte[]> ReadKeyAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (!string.IsNullOrWhiteSpace(settings.SecretKey))
        {
            return Convert.FromBase64String(settings.SecretKey.Trim());
        }

        var secret = await dapr.GetSecretAsync(settings.SecretStore!, settings.SecretName, cancellationToken: cancellationToken);
        var value = secret.TryGetValue(settings.SecretName, out var named) ? named : secret.Values.SingleOrDefault();
        return value is not null && DaprTransportOptionsValidator.IsKey(value)
            ? Convert.FromBase64String(value.Trim())
            : throw new InvalidOperationException(
                $"Secret '{settings.SecretName}' in Dapr secret store '{settings.SecretStore}' is missing or is not base64 of 32 bytes.");
    }
}
