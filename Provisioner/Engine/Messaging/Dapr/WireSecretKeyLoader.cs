using global::Dapr.Client;
using Microsoft.Extensions.Options;
using Provisioner.Messaging.Wire;

namespace Provisioner.Messaging.Dapr;

/// <summary>
/// Loads the provisioning secret key (which encrypts instance passwords and signs every message) and the keys still
/// accepted while it rotates into <see cref="WireSecretProtector"/> before the first message is written or read: from
/// configuration, or through the sidecar's secret API (so in a cluster they live in the platform's secret store, never
/// in a config file).
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
                protector.UseKeys(await ReadKeyAsync(cancellationToken), await ReadAcceptedKeysAsync(cancellationToken));
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

        var value = await ReadSecretAsync(settings.SecretName, cancellationToken);
        return value is not null && DaprTransportOptionsValidator.IsKey(value)
            ? Convert.FromBase64String(value.Trim())
            : throw new InvalidOperationException(
                $"Secret '{settings.SecretName}' in Dapr secret store '{settings.SecretStore}' is missing or is not base64 of 32 bytes.");
    }

    private async Task<IReadOnlyList<byte[]>> ReadAcceptedKeysAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var accepted = settings.AcceptedSecretKeys.AsEnumerable();
        if (!string.IsNullOrWhiteSpace(settings.SecretStore) && !string.IsNullOrWhiteSpace(settings.AcceptedSecretName))
        {
            var value = await ReadSecretAsync(settings.AcceptedSecretName, cancellationToken) ?? "";
            accepted = accepted.Concat(value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        }

        return [.. accepted.Select(key => DaprTransportOptionsValidator.IsKey(key)
            ? Convert.FromBase64String(key.Trim())
            : throw new InvalidOperationException($"An accepted provisioning key ({DaprTransportOptions.SectionName}:AcceptedSecretKeys or secret '{settings.AcceptedSecretName}') is not base64 of 32 bytes."))];
    }

    private async Task<string?> ReadSecretAsync(string name, CancellationToken cancellationToken)
    {
        var secret = await dapr.GetSecretAsync(options.Value.SecretStore!, name, cancellationToken: cancellationToken);
        return secret.TryGetValue(name, out var named) ? named : secret.Values.SingleOrDefault();
    }
}
