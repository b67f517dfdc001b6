namespace ControlPlane.Secrets;

/// <summary>
/// Section <c>Secrets</c>: where the keys that encrypt instance passwords at rest come from. Embedded, the default is a
/// key file in the data directory, created on the first start; in cluster mode every silo needs the same keys, so they
/// come from a Dapr secret store or a key file every silo reads (a mounted Kubernetes secret).
/// </summary>
public sealed class SecretsOptions
{
    public const string SectionName = "Secrets";

    /// <summary>A Dapr secret store holding the key set as <see cref="SecretName"/>; required in cluster mode.</summary>
    public string? SecretStore { get; set; }

    public string SecretName { get; set; } = "instance-secret-keys";

    /// <summary>A key set file to use instead (mode 0600; it must exist). Unset in embedded mode: <c>&lt;dataDir&gt;/secret-keys</c>.</summary>
    public string? KeyFile { get; set; }

    /// <summary>The sidecar's gRPC endpoint; unset, DaprClient uses DAPR_GRPC_ENDPOINT or DAPR_GRPC_PORT as daprd sets them.</summary>
    public string? GrpcEndpoint { get; set; }
}
