using Microsoft.Extensions.Options;

namespace Provisioner.Messaging.Dapr;

/// <summary>
/// Section <c>Provisioning:Dapr</c>: how the control plane and the provisioner find each other on Dapr pub/sub,
/// and where the key that encrypts instance passwords on the bus comes from. Both apps must agree on all of it.
/// </summary>
public sealed class DaprTransportOptions
{
    public const string SectionName = "Provisioning:Dapr";

    /// <summary>The name of the pub/sub component (deploy/dapr/components/pubsub.yaml).</summary>
    public string PubSubName { get; set; } = "pubsub";

    /// <summary>Control plane → provisioner.</summary>
    public string CommandsTopic { get; set; } = "provisioning-commands";

    /// <summary>Provisioner → control plane.</summary>
    public string EventsTopic { get; set; } = "provisioning-events";

    /// <summary>Where the sidecar moves a command the provisioner dropped as unreadable or failed on every delivery.</summary>
    public string DeadLetterTopic { get; set; } = "provisioning-dead-letters";

    /// <summary>The sidecar's gRPC endpoint; unset, DaprClient uses DAPR_GRPC_ENDPOINT or DAPR_GRPC_PORT as daprd sets them.</summary>
    public string? GrpcEndpoint { get; set; }

    /// <summary>The password-encryption key, base64 of 32 random bytes. Use this or <see cref="SecretStore"/>.</summary>
    public string? SecretKey { get; set; }

    /// <summary>A Dapr secret store that holds the key under <see cref="SecretName"/> (deploy/dapr/components/secretstore.yaml).</summary>
    public string? SecretStore { get; set; }

    public string SecretName { get; set; } = "provisioning-secret-key";

    /// <summary>
    /// Keys also accepted on receipt, never used to send: while the key rotates, every app first accepts the new key, then
    /// sends with it (it becomes <see cref="SecretKey"/> and the old one moves here), then the old one is removed. Base64 of
    /// 32 bytes each. With <see cref="SecretStore"/>, the secret <see cref="AcceptedSecretName"/> holds them instead.
    /// </summary>
    public string[] AcceptedSecretKeys { get; set; } = [];

    /// <summary>With <see cref="SecretStore"/>: an optional secret holding the accepted keys, comma-separated.</summary>
    public string? AcceptedSecretName { get; set; }

    /// <summary>
    /// How far ahead of the receiver's clock a worker's event may be stamped; one further ahead is refused, so a worker's
    /// clock cannot freeze an instance's health. Five minutes unless set.
    /// </summary>
    public TimeSpan MaxClockSkew { get; set; } = Wire.ProvisioningWireFormat.DefaultMaxClockSkew;

    /// <summary>
    /// The token the sidecar sends on every call to this app (<c>dapr-api-token</c>): daprd's app token, which Dapr puts in
    /// the app's environment as APP_API_TOKEN when the sidecar has one (Kubernetes: the <c>dapr.io/app-token-secret</c>
    /// annotation). Unset here, APP_API_TOKEN is used. Required: without it, whoever reaches the app's Dapr routes could
    /// forge provisioning events or commands.
    /// </summary>
    public string? AppApiToken { get; set; }

    /// <summary>The token to require on the app's Dapr routes, from the setting or else the environment.</summary>
    public string? EffectiveAppApiToken => string.IsNullOrEmpty(AppApiToken) ? Environment.GetEnvironmentVariable(DaprAppToken.Variable) : AppApiToken;
}

public sealed class DaprTransportOptionsValidator : IValidateOptions<DaprTransportOptions>
{
    public ValidateOptionsResult Validate(string? name, DaprTransportOptions options)
    {
        var failures = new List<string>();
        foreach (var (key, value) in new[]
        {
            (nameof(options.PubSubName), options.PubSubName),
            (nameof(options.CommandsTopic), options.CommandsTopic),
            (nameof(options.EventsTopic), options.EventsTopic),
            (nameof(options.DeadLetterTopic), options.DeadLetterTopic),
        })
        {
            if (string.IsNullOrWhiteSpace(value))
            {
                failures.Add($"{DaprTransportOptions.SectionName}:{key} is required.");
            }
        }

        var hasKey = !string.IsNullOrWhiteSpace(options.SecretKey);
        var hasStore = !string.IsNullOrWhiteSpace(options.SecretStore);
        if (hasKey == hasStore)
        {
            failures.Add(
                $"Set exactly one of {DaprTransportOptions.SectionName}:SecretKey (base64 of 32 random bytes, e.g. `openssl rand -base64 32`) " +
                $"or {DaprTransportOptions.SectionName}:SecretStore (a Dapr secret store holding it as '{options.SecretName}'): " +
                "instance passwords are encrypted on the bus with it, and both apps need the same one.");
        }
        else if (hasKey && !IsKey(options.SecretKey!))
        {
            failures.Add($"{DaprTransportOptions.SectionName}:SecretKey must be base64 of exactly 32 bytes.");
        }

        for (var i = 0; i < options.AcceptedSecretKeys.Length; i++)
        {
            if (!IsKey(options.AcceptedSecretKeys[i]))
            {
                failures.Add($"{DaprTransportOptions.SectionName}:AcceptedSecretKeys:{i} must be base64 of exactly 32 bytes (a key still accepted while keys rotate).");
            }
        }

        if (options.MaxClockSkew <= TimeSpan.Zero || options.MaxClockSkew > TimeSpan.FromHours(1))
        {
            failures.Add(
                $"{DaprTransportOptions.SectionName}:MaxClockSkew is {options.MaxClockSkew}: set how far ahead of this clock a worker's event may be stamped, " +
                "above zero and at most an hour (e.g. 00:05:00); keep the machines' clocks synchronised rather than widening it.");
        }

        if (options.EffectiveAppApiToken is not { Length: >= 16 })
        {
            failures.Add(
                $"The Dapr transport needs the sidecar's app token, of at least 16 characters, in {DaprAppToken.Variable} (Dapr sets it from the " +
                $"sidecar's dapr.io/app-token-secret) or {DaprTransportOptions.SectionName}:AppApiToken: without it anyone who reaches this app's " +
                "Dapr routes could forge provisioning messages.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    internal static bool IsKey(string base64)
    {
        var buffer = new byte[64];
        return Convert.TryFromBase64String(base64.Trim(), buffer, out var written) && written == Wire.WireSecretProtector.KeyBytes;
    }
}
