using ControlPlane.Operations;
using Provisioner.Deployments;
using Endpoint = Provisioner.Deployments.Endpoint;
using Provisioner.Messaging;

namespace ControlPlane.Instances;

/// <summary>The lifecycle of DESIGN.md. <c>Degraded</c> is a health condition of a Running instance, not a state.</summary>
public enum InstanceLifecycle
{
    Provisioning,
    Running,
    Updating,
    Stopping,
    Stopped,
    Starting,
    Deleting,
    Deleted,
    Failed,
}

public enum InstanceHealth
{
    Unknown,
    Healthy,
    Degraded,
    Unhealthy,
}

/// <summary>Something that happened to an instance outside any operation, or an operation's outcome.</summary>
[GenerateSerializer, Immutable]
public sealed record InstanceEvent
{
    [Id(0)] public required DateTimeOffset At { get; init; }
    /// <summary>Stable, e.g. <c>process-restarted</c>, <c>health-changed</c>, <c>operation-failed</c>.</summary>
    [Id(1)] public required string Kind { get; init; }
    [Id(2)] public required string Message { get; init; }
    [Id(3)] public string? OperationId { get; init; }
}

/// <summary>An instance as every reader sees it. Never carries credentials.</summary>
[GenerateSerializer, Immutable]
public sealed record InstanceView
{
    [Id(0)] public required string Id { get; init; }
    [Id(1)] public required string TenantId { get; init; }
    [Id(2)] public required string Name { get; init; }
    [Id(3)] public required string Product { get; init; }
    [Id(4)] public required string Version { get; init; }
    [Id(5)] public required string Size { get; init; }
    [Id(6)] public required string Backend { get; init; }
    [Id(7)] public required InstanceLifecycle State { get; init; }
    [Id(8)] public required InstanceHealth Health { get; init; }
    [Id(9)] public string? HealthDetail { get; init; }
    [Id(10)] public string? FailureReason { get; init; }
    [Id(11)] public Endpoint? Endpoint { get; init; }
    [Id(12)] public required DateTimeOffset CreatedAt { get; init; }
    [Id(13)] public required DateTimeOffset UpdatedAt { get; init; }
    [Id(14)] public string? LastOperationId { get; init; }
    [Id(15)] public string? ActiveOperationId { get; init; }
    [Id(16)] public DateTimeOffset? DeletedAt { get; init; }
}

[GenerateSerializer, Immutable]
public sealed record InstanceCredentials
{
    [Id(0)] public required string Username { get; init; }
    [Id(1)] public required string Password { get; init; }
    [Id(2)] public required string Host { get; init; }
    [Id(3)] public required int Port { get; init; }

    /// <summary>A Redis URI any client library accepts.</summary>
    public string Uri => $"redis://{Username}:{System.Uri.EscapeDataString(Password)}@{Host}:{Port}";
}

/// <summary>The version, size and goal a deployment should have; kept to roll back to.</summary>
public sealed record DesiredDeployment(string Version, string Size, DeploymentGoal Goal);

/// <summary>The durable state of one instance's grain (stored as JSON).</summary>
public sealed class InstanceState
{
    public string Id { get; set; } = "";
    public string TenantId { get; set; } = "";
    public string Name { get; set; } = "";
    public string Product { get; set; } = "";
    public string Backend { get; set; } = "";
    public string Password { get; set; } = "";
    public InstanceLifecycle Lifecycle { get; set; }
    public string? FailureReason { get; set; }
    public InstanceHealth Health { get; set; }
    public string? HealthDetail { get; set; }
    public Endpoint? Endpoint { get; set; }

    /// <summary>What the deployment should be now. Version and size shown to users are this, once an operation reached it.</summary>
    public DesiredDeployment Desired { get; set; } = new("", "", DeploymentGoal.Running);
    /// <summary>What to go back to if the active operation is cancelled or fails.</summary>
    public DesiredDeployment? RollbackTo { get; set; }
    /// <summary>Grows with every change of <see cref="Desired"/>; events for older generations are stale.</summary>
    public long Generation { get; set; }
    /// <summary>What the last completed change left deployed; the version and size users see.</summary>
    public string Version { get; set; } = "";
    public string Size { get; set; } = "";

    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
    public DateTimeOffset? DeletedAt { get; set; }
    public string? ActiveOperationId { get; set; }
    /// <summary>Whether the active operation is still going forward or rolling back.</summary>
    public ApplyPurpose ActivePhase { get; set; }
    /// <summary>Why the active operation rolls back: its failure, or null when it was cancelled.</summary>
    public OperationError? RollbackCause { get; set; }
    /// <summary>How many of the active operation's steps came before the current phase, to number steps across phases.</summary>
    public int PhaseStepOffset { get; set; }
    /// <summary>The worker's run of the current phase's command whose events are being applied, and the last one applied.</summary>
    public string? PhaseExecutionId { get; set; }
    public int PhaseSequence { get; set; }
    /// <summary>Earlier runs of the current phase's command, replaced by a redelivery; their late step events are ignored.</summary>
    public List<string> RetiredExecutionIds { get; set; } = [];
    /// <summary>When the deployment was last observed by a worker; an older observation arriving later is ignored.</summary>
    public DateTimeOffset? ObservedAt { get; set; }
    public string? LastOperationId { get; set; }
    public List<OperationRecord> Operations { get; set; } = [];
    public List<InstanceEvent> Events { get; set; } = [];
}
