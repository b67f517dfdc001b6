using System.Text.Json.Serialization;
using Provisioner.Deployments;

namespace Provisioner.Messaging;

/// <summary>
/// What a worker reports back about an instance. The instance's grain is the only consumer. Over Dapr these
/// arrive at least once and in any order; <see cref="ExecutionId"/> and <see cref="Sequence"/> let the grain
/// put them back in order and drop the ones it has already seen or that came too late.
/// </summary>
[GenerateSerializer]
[JsonPolymorphic(TypeDiscriminatorPropertyName = "kind")]
[JsonDerivedType(typeof(DeploymentStepStarted), "step-started")]
[JsonDerivedType(typeof(DeploymentStepCompleted), "step-completed")]
[JsonDerivedType(typeof(DeploymentApplied), "applied")]
[JsonDerivedType(typeof(DeploymentFailed), "failed")]
[JsonDerivedType(typeof(DeploymentCancelled), "cancelled")]
public abstract record ProvisioningEvent
{
    [Id(0)] public required string InstanceId { get; init; }
    [Id(1)] public string? OperationId { get; init; }
    /// <summary>The spec generation the work was for; the grain ignores events for a generation it has moved past.</summary>
    [Id(2)] public required long Generation { get; init; }
    [Id(3)] public required ApplyPurpose Purpose { get; init; }
    [Id(4)] public required DateTimeOffset OccurredAt { get; init; }
    /// <summary>
    /// One run of one command by a worker; a command delivered again after a crash is a new execution.
    /// Null only for events not made by a worker (tests).
    /// </summary>
    [Id(5)] public string? ExecutionId { get; init; }
    /// <summary>1, 2, 3… in the order the execution published its events; the outcome has the highest.</summary>
    [Id(6)] public int Sequence { get; init; }

    /// <summary>Applied, failed or cancelled: how an execution ended.</summary>
    [JsonIgnore]
    public bool IsOutcome => this is DeploymentApplied or DeploymentFailed or DeploymentCancelled;
}

[GenerateSerializer]
public sealed record DeploymentStepStarted : ProvisioningEvent
{
    /// <summary>1-based.</summary>
    [Id(0)] public required int StepNumber { get; init; }
    [Id(1)] public required int StepCount { get; init; }
    [Id(2)] public required string StepName { get; init; }
}

[GenerateSerializer]
public sealed record DeploymentStepCompleted : ProvisioningEvent
{
    [Id(0)] public required int StepNumber { get; init; }
    [Id(1)] public required int StepCount { get; init; }
    [Id(2)] public required string StepName { get; init; }
    /// <summary>When the step started: its start event may be overtaken on a bus, and the step still shows both times.</summary>
    [Id(3)] public DateTimeOffset? StartedAt { get; init; }
}

/// <summary>The deployment matches the spec. <see cref="Repairs"/> lists what had to be fixed to get there (reconcile).</summary>
[GenerateSerializer]
public sealed record DeploymentApplied : ProvisioningEvent
{
    [Id(0)] public required ObservedDeployment Observed { get; init; }
    [Id(1)] public string? Drift { get; init; }
    [Id(2)] public IReadOnlyList<string> Repairs { get; init; } = [];
}

[GenerateSerializer]
public sealed record DeploymentFailed : ProvisioningEvent
{
    [Id(0)] public required string ErrorCode { get; init; }
    [Id(1)] public required string ErrorMessage { get; init; }
    [Id(2)] public required ObservedDeployment Observed { get; init; }
}

[GenerateSerializer]
public sealed record DeploymentCancelled : ProvisioningEvent
{
    [Id(0)] public required ObservedDeployment Observed { get; init; }
}

/// <summary>Carries events from the workers back to the control plane.</summary>
public interface IProvisioningEventSink
{
    Task PublishAsync(ProvisioningEvent provisioningEvent, CancellationToken cancellationToken = default);
}
