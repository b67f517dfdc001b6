namespace Provisioner.Deployments;

/// <summary>What a backend found when it looked at an instance's deployment.</summary>
public enum DeploymentStatus
{
    /// <summary>Nothing exists: no process, no data.</summary>
    Absent,
    /// <summary>Data exists, no process serves it.</summary>
    Stopped,
    /// <summary>The process runs but does not answer yet.</summary>
    Starting,
    /// <summary>The process runs and answers an authenticated PING.</summary>
    Running,
}

public enum DeploymentHealth
{
    Unknown,
    Healthy,
    Unhealthy,
}

[GenerateSerializer, Immutable]
public sealed record Endpoint
{
    [Id(0)] public required string Host { get; init; }
    [Id(1)] public required int Port { get; init; }

    public override string ToString() => $"{Host}:{Port}";
}

[GenerateSerializer, Immutable]
public sealed record ObservedDeployment
{
    [Id(0)] public required DeploymentStatus Status { get; init; }
    [Id(1)] public DeploymentHealth Health { get; init; } = DeploymentHealth.Unknown;
    /// <summary>Where customers connect: the address the backend advertises (a DNS name, a load balancer), never a bind address.</summary>
    [Id(2)] public Endpoint? Endpoint { get; init; }
    /// <summary>The version and size actually deployed, which may differ from the spec while it converges.</summary>
    [Id(3)] public string? Version { get; init; }
    [Id(4)] public string? Size { get; init; }
    /// <summary>The spec generation this deployment was last brought to.</summary>
    [Id(5)] public long Generation { get; init; }
    [Id(6)] public int? ProcessId { get; init; }
    /// <summary>A sentence for a person: why it is unhealthy, how it answered.</summary>
    [Id(7)] public string? Detail { get; init; }
    /// <summary>How long the health check took to answer, when it answered.</summary>
    [Id(8)] public TimeSpan? ProbeLatency { get; init; }
    /// <summary>The restart count (<see cref="DeploymentSpec.Restarts"/>) the deployment last carried out.</summary>
    [Id(9)] public long Restarts { get; init; }
    /// <summary>
    /// How many times a process (a container, a replica) was started for this instance since it was created, for any
    /// reason. A rise the control plane did not ask for is a crash that was repaired: it feeds crash-loop detection.
    /// </summary>
    [Id(10)] public long ProcessStarts { get; init; }
    /// <summary>
    /// Where the platform's own probes (health, SLA, metering) reach the instance, when that differs from
    /// <see cref="Endpoint"/> (e.g. a cluster-internal address); null means the same.
    /// </summary>
    [Id(11)] public Endpoint? ProbeEndpoint { get; init; }
    /// <summary>For a TLS instance: the certificate (PEM) of the CA that issued its server certificate, which clients trust.</summary>
    [Id(12)] public string? TlsAuthority { get; init; }

    public static ObservedDeployment Absent { get; } = new() { Status = DeploymentStatus.Absent };
}
