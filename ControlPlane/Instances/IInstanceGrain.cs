using ControlPlane.Api;
using ControlPlane.Operations;
using ControlPlane.Tenants;
using Orleans.Concurrency;
using Provisioner.Messaging;

namespace ControlPlane.Instances;

/// <summary>
/// One hosted instance: its desired spec, what was last observed, its lifecycle and operations, and the
/// reconcile loop that keeps the deployment matching the spec. Keyed by instance id. Verbs arrive through the
/// tenant's grain, which checks quotas and idempotency first.
/// </summary>
public interface IInstanceGrain : IGrainWithStringKey
{
    /// <summary>Runs a verb (<see cref="InstanceLifecycleTable.Verbs"/>) as an operation; the same command again answers the same operation.</summary>
    Task<OperationRecord> ExecuteAsync(InstanceCommand command);

    Task<OperationRecord> CancelOperationAsync(OperationRequest request);

    /// <summary>The instance, or null when no instance with this id exists (never created, or pruned after deletion).</summary>
    [ReadOnly]
    Task<InstanceView?> GetAsync();

    [ReadOnly]
    Task<OperationRecord?> GetOperationAsync(string operationId);

    /// <summary>Its operations, newest first.</summary>
    [ReadOnly]
    Task<Page<OperationRecord>> ListOperationsAsync(PageRequest page);

    /// <summary>What happened to it, newest first.</summary>
    [ReadOnly]
    Task<Page<InstanceEvent>> ListEventsAsync(PageRequest page);

    [ReadOnly]
    Task<InstanceCredentials> GetCredentialsAsync();

    /// <summary>A provisioning worker reports progress or an outcome.</summary>
    Task ApplyEventAsync(ProvisioningEvent provisioningEvent);

    /// <summary>A command for this instance never reached a worker and was moved to the dead-letter topic.</summary>
    Task RecordDeadLetterAsync(DeadLetteredCommand deadLetter);

    /// <summary>Activates the grain so its reconcile loop runs (used at start-up to re-adopt instances).</summary>
    Task WakeAsync();
}

/// <summary>
/// A verb for one instance, the one shape it has from the API to the instance's grain: the HTTP layer fills in what
/// was asked and by whom; the tenant's grain adds the ids, the tenant and (for a create) the backend.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record InstanceCommand
{
    [Id(0)] public required OperationType Verb { get; init; }
    [Id(1)] public required string RequestedBy { get; init; }
    /// <summary>Empty for a create until the tenant's grain assigns one.</summary>
    [Id(2)] public string InstanceId { get; init; } = "";
    /// <summary>Assigned by the tenant's grain.</summary>
    [Id(3)] public string OperationId { get; init; } = "";
    [Id(4)] public string TenantId { get; init; } = "";
    /// <summary>Create only: the name, product and backend.</summary>
    [Id(5)] public string? Name { get; init; }
    [Id(6)] public string? Product { get; init; }
    [Id(7)] public string? Backend { get; init; }
    /// <summary>Create, scale and upgrade: the version and size (catalog-checked).</summary>
    [Id(8)] public string? Version { get; init; }
    [Id(9)] public string? Size { get; init; }
    [Id(10)] public IdempotencyKey? Idempotency { get; init; }
    /// <summary>Create only: serve TLS only (the catalog says which products can).</summary>
    [Id(11)] public bool Tls { get; init; }

    /// <summary>What the operation records it was asked for: the arguments that were given.</summary>
    public IEnumerable<KeyValuePair<string, string>> Parameters()
    {
        foreach (var (name, value) in new[] { ("name", Name), ("product", Product), ("version", Version), ("size", Size) })
        {
            if (value is not null)
            {
                yield return KeyValuePair.Create(name, value);
            }
        }
    }
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
