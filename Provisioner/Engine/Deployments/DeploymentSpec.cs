namespace Provisioner.Deployments;

/// <summary>What the control plane wants to exist for one hosted instance.</summary>
public enum DeploymentGoal
{
    Running,
    Stopped,
    Absent,
}

/// <summary>
/// The desired deployment of one instance. Applying the same spec twice is a no-op, which is what makes
/// every provisioning command safe to deliver more than once. <see cref="Generation"/> grows with every
/// change the control plane makes, so a backend never goes back to an older spec.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record DeploymentSpec
{
    [Id(0)] public required string InstanceId { get; init; }
    [Id(1)] public required string TenantId { get; init; }
    [Id(2)] public required string Backend { get; init; }
    [Id(3)] public required string Product { get; init; }
    [Id(4)] public required string Version { get; init; }
    [Id(5)] public required string Size { get; init; }
    [Id(6)] public required DeploymentGoal Goal { get; init; }
    /// <summary>The customer's password (user <see cref="InstanceAccess.CustomerUser"/>).</summary>
    [Id(7)] public required Secret Password { get; init; }
    [Id(8)] public required long Generation { get; init; }
    /// <summary>
    /// How many restarts the control plane has asked for over the instance's life. When it is above the count the
    /// deployment last carried out (<see cref="ObservedDeployment.Restarts"/>), the backend stops the instance's process
    /// and starts it again, keeping its data, port and endpoint. 0 until the first restart.
    /// </summary>
    [Id(9)] public long Restarts { get; init; }
    /// <summary>Serve clients over TLS only, with a certificate from the platform CA (chosen at create; the catalog says which products can).</summary>
    [Id(10)] public bool Tls { get; init; }
    /// <summary>
    /// The password of the platform's own user (<see cref="InstanceAccess.PlatformUser"/>), with which health and SLA probes
    /// connect and credentials are reloaded. Never shown to the customer, whose user cannot change it.
    /// </summary>
    [Id(11)] public required Secret PlatformPassword { get; init; }
}
