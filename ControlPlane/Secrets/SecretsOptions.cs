namespace ControlPlane.Secrets;

/// <summary>
/// Section <c>Secrets</c>: where the keys that encrypt instance passwords at rest come from. Embedded, the default is a
/// key file in the data directory; in cluster mode every silo needs the same keys, so they come from a Dapr secret store.
/// </summary>
public sealed class SecretsOptions
{
    public const string SectionName = "Secrets";

    /// <summary>A Dapr secret store holding the key set as <see cref="SecretName"/>; required in cluster mode.</summary>
    public string? SecretStore { get; set; }

    public string SecretName { get; set; } = "instance-secret-keys";

    /// <summary>The sidecar's gRPC endpoint; unset, DaprClient uses DAPR_GRPC_ENDPOINT or DAPR_GRPC_PORT as daprd sets them.</summary>
    public string? GrpcEndpoint { get; set; }
}
