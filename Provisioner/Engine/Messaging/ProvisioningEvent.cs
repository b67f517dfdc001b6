using Provisioner.Deployments;

namespace Provisioner.Messaging;

/// <summary>What a worker reports back about an instance. The instance's grain is the only consumer.</summary>
[GenerateSerializer]
public abstract record ProvisioningEvent
{
    [Id(0)] public required string InstanceId { get; init; }
    [Id(1)] public string? OperationId { get; init; }
    /// <summary>The spec generation the work was for; the grain ignores events for a generation it has moved past.</summary>
    [Id(2)] public required long Generation { get; init; }
    [Id(3)] public required ApplyPurpose Purpose { get; init; }
    [Id(4)] public required DateTimeOffset OccurredAt { get; init; }
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
