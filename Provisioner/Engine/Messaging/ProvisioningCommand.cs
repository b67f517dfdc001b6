using System.Text.Json.Serialization;
using Provisioner.Deployments;

namespace Provisioner.Messaging;

/// <summary>
/// A request from the control plane to the provisioning workers. Delivery is at-least-once. On the Dapr bus
/// it travels as JSON with a <c>kind</c> discriminator (see <see cref="Wire.ProvisioningWireFormat"/>).
/// </summary>
[GenerateSerializer]
[JsonPolymorphic(TypeDiscriminatorPropertyName = "kind")]
[JsonDerivedType(typeof(ApplyDeploymentCommand), "apply")]
[JsonDerivedType(typeof(CancelOperationCommand), "cancel")]
public abstract record ProvisioningCommand
{
    [Id(0)] public required string InstanceId { get; init; }
    /// <summary>The operation this command serves; null for the reconcile loop's periodic check.</summary>
    [Id(1)] public string? OperationId { get; init; }
    [Id(2)] public required DateTimeOffset IssuedAt { get; init; }
}

public enum ApplyPurpose
{
    /// <summary>Carry out a user's operation (create, scale, stop, …), reporting each step.</summary>
    Operation,
    /// <summary>Undo a cancelled or failed operation by converging back to the previous spec.</summary>
    Rollback,
    /// <summary>The periodic check: observe, and repair drift such as a killed process.</summary>
    Reconcile,
}

/// <summary>Converge the instance's deployment to <see cref="Spec"/>.</summary>
[GenerateSerializer]
public sealed record ApplyDeploymentCommand : ProvisioningCommand
{
    [Id(0)] public required DeploymentSpec Spec { get; init; }
    [Id(1)] public required ApplyPurpose Purpose { get; init; }
}

/// <summary>Stop work on <see cref="ProvisioningCommand.OperationId"/> at the next safe point.</summary>
[GenerateSerializer]
public sealed record CancelOperationCommand : ProvisioningCommand;

/// <summary>Carries commands to the workers: in-process in embedded mode, Dapr pub/sub in cluster mode.</summary>
public interface IProvisioningCommandBus
{
    Task SendAsync(ProvisioningCommand command, CancellationToken cancellationToken = default);
}
