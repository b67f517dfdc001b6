using Orleans.Concurrency;
using ControlPlane.Operations;
using Provisioner.Messaging;

namespace ControlPlane.Instances;

/// <summary>
/// One hosted instance: its desired spec, what was last observed, its lifecycle and operations, and the
/// reconcile loop that keeps the deployment matching the spec. Keyed by instance id. Mutations arrive
/// through the tenant's grain, which checks quotas and idempotency first.
/// </summary>
public interface IInstanceGrain : IGrainWithStringKey
{
    Task<OperationRecord> CreateAsync(CreateInstanceCommand command);

    Task<OperationRecord> ChangeSpecAsync(ChangeSpecCommand command);

    Task<OperationRecord> StopAsync(OperationRequest request);

    Task<OperationRecord> StartAsync(OperationRequest request);

    Task<OperationRecord> DeleteAsync(OperationRequest request);

    Task<OperationRecord> CancelOperationAsync(OperationRequest request);

    /// <summary>The instance, or null when no instance with this id was ever created.</summary>
    [ReadOnly]
    Task<InstanceView?> GetAsync();

    [ReadOnly]
    Task<OperationRecord?> GetOperationAsync(string operationId);

    [ReadOnly]
    Task<IReadOnlyList<OperationRecord>> GetOperationsAsync();

    [ReadOnly]
    Task<IReadOnlyList<InstanceEvent>> GetEventsAsync();

    [ReadOnly]
    Task<InstanceCredentials> GetCredentialsAsync();

    /// <summary>A provisioning worker reports progress or an outcome.</summary>
    Task ApplyEventAsync(ProvisioningEvent provisioningEvent);

    /// <summary>A command for this instance never reached a worker and was moved to the dead-letter topic.</summary>
    Task RecordDeadLetterAsync(DeadLetteredCommand deadLetter);

    /// <summary>Activates the grain so its reconcile loop runs (used at start-up to re-adopt instances).</summary>
    Task WakeAsync();
}

/// <summary>What the control plane could tell of a command the bus gave up on.</summary>
[GenerateSerializer, Immutable]
public sealed record DeadLetteredCommand
{
    /// <summary><c>apply</c> or <c>cancel</c>, when readable.</summary>
    [Id(0)] public string? Kind { get; init; }
    [Id(1)] public string? OperationId { get; init; }
    [Id(2)] public ApplyPurpose? Purpose { get; init; }
    [Id(3)] public long? Generation { get; init; }
    /// <summary>Why it could not be carried out, for a person.</summary>
    [Id(4)] public required string Reason { get; init; }
    [Id(5)] public required string Topic { get; init; }
}

[GenerateSerializer, Immutable]
public sealed record OperationRequest
{
    [Id(0)] public required string OperationId { get; init; }
    [Id(1)] public required string RequestedBy { get; init; }
}

[GenerateSerializer, Immutable]
public sealed record CreateInstanceCommand
{
    [Id(0)] public required string OperationId { get; init; }
    [Id(1)] public required string RequestedBy { get; init; }
    [Id(2)] public required string TenantId { get; init; }
    [Id(3)] public required string Name { get; init; }
    [Id(4)] public required string Product { get; init; }
    [Id(5)] public required string Version { get; init; }
    [Id(6)] public required string Size { get; init; }
    [Id(7)] public required string Backend { get; init; }
}

/// <summary>A scale (size) and/or upgrade (version); both already checked against the catalog.</summary>
[GenerateSerializer, Immutable]
public sealed record ChangeSpecCommand
{
    [Id(0)] public required string OperationId { get; init; }
    [Id(1)] public required string RequestedBy { get; init; }
    [Id(2)] public required string Version { get; init; }
    [Id(3)] public required string Size { get; init; }
}
