using ControlPlane.Errors;
using ControlPlane.Operations;
using Provisioner.Deployments;
using Provisioner.Messaging;
using Endpoint = Provisioner.Deployments.Endpoint;

namespace ControlPlane.Instances;

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
    /// <summary>Stable, e.g. <c>repaired</c>, <c>health-changed</c>, <c>liveness-restart</c>, <c>crash-loop</c>, <c>operation-failed</c>.</summary>
    [Id(1)] public required string Kind { get; init; }
    [Id(2)] public required string Message { get; init; }
    [Id(3)] public string? OperationId { get; init; }
    /// <summary>1, 2, 3… per instance: a stable order and page position even when two events share a time.</summary>
    [Id(4)] public long Sequence { get; init; }
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
    /// <summary>Why it is Failed, for programs: e.g. <c>crash-loop</c>, <c>process-exited</c>, <c>startup-timeout</c>.</summary>
    [Id(17)] public string? FailureCode { get; init; }
    /// <summary>Clients connect over TLS only, trusting the CA that comes with the credentials.</summary>
    [Id(18)] public bool Tls { get; init; }
}

[GenerateSerializer, Immutable]
public sealed record InstanceCredentials
{
    [Id(0)] public required string Username { get; init; }
    [Id(1)] public required string Password { get; init; }
    [Id(2)] public required string Host { get; init; }
    [Id(3)] public required int Port { get; init; }
    /// <summary>Connect with TLS only (<c>rediss://</c>), trusting <see cref="CaCertificate"/>.</summary>
    [Id(4)] public bool Tls { get; init; }
    /// <summary>For a TLS instance: the platform CA's certificate (PEM), the one certificate a client needs to trust.</summary>
    [Id(5)] public string? CaCertificate { get; init; }

    /// <summary>A Redis URI any client library accepts.</summary>
    public string Uri => $"{(Tls ? "rediss" : "redis")}://{Username}:{System.Uri.EscapeDataString(Password)}@{Host}:{Port}";
}

/// <summary>The version, size, goal and restart count a deployment should have; kept to roll back to.</summary>
public sealed record DesiredDeployment(string Version, string Size, DeploymentGoal Goal, long Restarts = 0);

/// <summary>The operation in progress and how far the provisioner's run of its current phase has got.</summary>
public sealed class ActiveOperation
{
    public string OperationId { get; set; } = "";
    public OperationType Verb { get; set; }
    /// <summary>Going forward (<see cref="ApplyPurpose.Operation"/>) or rolling back (<see cref="ApplyPurpose.Rollback"/>).</summary>
    public ApplyPurpose Phase { get; set; }
    /// <summary>The state it started from (null for a create): where a rollback returns.</summary>
    public InstanceLifecycle? StateBefore { get; set; }
    /// <summary>What the deployment was before, to roll back to.</summary>
    public DesiredDeployment? RollbackTo { get; set; }
    /// <summary>Why it rolls back: its failure; null while going forward or when a person cancelled it.</summary>
    public OperationError? RollbackCause { get; set; }
    /// <summary>How many of the operation's steps came before the current phase, to number steps across phases.</summary>
    public int StepOffset { get; set; }
    /// <summary>The provisioner's run of the current phase's command whose events are being applied, and the last one applied.</summary>
    public string? ExecutionId { get; set; }
    public int Sequence { get; set; }
    /// <summary>Earlier runs of the current phase's command, replaced by a redelivery; their late step events are ignored.</summary>
    public List<string> RetiredExecutionIds { get; set; } = [];
}

/// <summary>A restart the provisioner made without being asked by an operation, kept for crash-loop detection.</summary>
public sealed record UnplannedRestart(DateTimeOffset At, string Detail);

/// <summary>The durable state of one instance's grain (stored as JSON).</summary>
public sealed class InstanceState
{
    public string Id { get; set; } = "";
    public string TenantId { get; set; } = "";
    public string Name { get; set; } = "";
    public string Product { get; set; } = "";
    public string Backend { get; set; } = "";
    /// <summary>Only in state stored before passwords were encrypted: the customer's password in plaintext, sealed and removed on activation.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Password { get; set; }
    /// <summary>The customer's password, sealed (<see cref="InstanceSecrets"/>); null once deleted.</summary>
    public string? SealedPassword { get; set; }
    /// <summary>The platform's own password for the instance (probes, reloads), sealed; never shown to the customer.</summary>
    public string? SealedPlatformPassword { get; set; }
    /// <summary>Serves TLS only (chosen at create).</summary>
    public bool Tls { get; set; }
    /// <summary>The CA (PEM) the backend reported issuing the instance's certificate; served with the credentials.</summary>
    public string? TlsAuthority { get; set; }
    public InstanceLifecycle Lifecycle { get; set; }
    public string? FailureReason { get; set; }
    public string? FailureCode { get; set; }
    public InstanceHealth Health { get; set; }
    public string? HealthDetail { get; set; }
    /// <summary>Where customers connect (what the backend advertises).</summary>
    public Endpoint? Endpoint { get; set; }
    /// <summary>Where the platform's probes connect, when not <see cref="Endpoint"/>.</summary>
    public Endpoint? ProbeEndpoint { get; set; }

    /// <summary>What the deployment should be now. Version and size shown to users are the last ones an operation reached.</summary>
    public DesiredDeployment Desired { get; set; } = new("", "", DeploymentGoal.Running);
    /// <summary>Grows with every change of <see cref="Desired"/>; events for older generations are stale.</summary>
    public long Generation { get; set; }
    public string Version { get; set; } = "";
    public string Size { get; set; } = "";

    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
    public DateTimeOffset? DeletedAt { get; set; }
    public ActiveOperation? Active { get; set; }
    public string? LastOperationId { get; set; }
    /// <summary>When the deployment was last observed by a worker; an older observation arriving later is ignored.</summary>
    public DateTimeOffset? ObservedAt { get; set; }
    /// <summary>How many process starts the backend had reported; a rise outside an operation is an unplanned restart.</summary>
    public long? ProcessStarts { get; set; }
    public List<UnplannedRestart> RecentRestarts { get; set; } = [];
    public List<OperationRecord> Operations { get; set; } = [];
    public List<InstanceEvent> Events { get; set; } = [];
    public long EventSequence { get; set; }
    /// <summary>
    /// The last event whose system-made change is in the audit log (<see cref="SystemChanges"/>). Null in state stored
    /// before the system's changes were audited: the first activation starts from the events as they are then.
    /// </summary>
    public long? AuditedEventSequence { get; set; }
    /// <summary>What billing meters the instance as (metered state and size), and since when: billing counts from then.</summary>
    public string? MeteredAs { get; set; }
    public DateTimeOffset? MeteredSince { get; set; }

    public OperationRecord? FindOperation(string operationId) => Operations.Find(operation => operation.Id == operationId);

    /// <summary>The record of the operation in progress, if any.</summary>
    public OperationRecord? RunningOperation() => Active is { } active ? FindOperation(active.OperationId) : null;

    /// <summary>The event reports on the active operation's current phase (its run, generation and purpose).</summary>
    public bool IsForActivePhase(ProvisioningEvent provisioningEvent) => Active is { } active
        && provisioningEvent.OperationId == active.OperationId
        && provisioningEvent.Generation == Generation
        && provisioningEvent.Purpose == active.Phase;

    /// <summary>A check's outcome for the current spec, not older than one already applied (events overtake each other on a bus).</summary>
    public bool IsCurrentCheck(ProvisioningEvent provisioningEvent) =>
        provisioningEvent is { IsOutcome: true, Purpose: ApplyPurpose.Reconcile, OperationId: null } and not DeploymentCancelled
        && provisioningEvent.Generation == Generation
        && Active is null
        && !(provisioningEvent.OccurredAt < ObservedAt);

    /// <summary>How a customer connects; refused while there is nothing to connect to.</summary>
    public InstanceCredentials Credentials(OpenedPasswords passwords) =>
        Lifecycle == InstanceLifecycle.Deleted ? throw Problems.InvalidState(Id, Lifecycle.ToString(), "read the credentials of", "A deleted instance has none.")
        : Endpoint is null ? throw Problems.InvalidState(Id, Lifecycle.ToString(), "read the credentials of", "It has no endpoint yet; try again when it is Running.")
        : new InstanceCredentials
        {
            Username = InstanceAccess.CustomerUser,
            Password = passwords.Customer.Value,
            Host = Endpoint.Host,
            Port = Endpoint.Port,
            Tls = Tls,
            CaCertificate = Tls ? TlsAuthority : null,
        };

    /// <summary>Stores a new version of an operation in place of the old one.</summary>
    public OperationRecord Replace(OperationRecord operation)
    {
        Operations[Operations.FindIndex(o => o.Id == operation.Id)] = operation;
        return operation;
    }

    /// <summary>Where the platform probes the instance: its probe address, or the endpoint customers use.</summary>
    public Endpoint? ProbeTarget() => ProbeEndpoint ?? Endpoint;

    /// <summary>What the table needs to know about the operation running, and what was last seen.</summary>
    public LifecycleContext Context() => Active is not { } active
        ? LifecycleContext.Idle
        : new LifecycleContext(
            active.OperationId,
            active.Verb,
            RollingBack: active.Phase == ApplyPurpose.Rollback,
            Cancelled: active.Phase == ApplyPurpose.Rollback && active.RollbackCause is null,
            Cancellable: RunningOperation()?.Cancellable ?? false,
            active.StateBefore,
            Serving: Health is InstanceHealth.Healthy or InstanceHealth.Degraded);

    public DeploymentSpec Spec(OpenedPasswords passwords) => new()
    {
        InstanceId = Id,
        TenantId = TenantId,
        Backend = Backend,
        Product = Product,
        Version = Desired.Version,
        Size = Desired.Size,
        Goal = Desired.Goal,
        Password = passwords.Customer,
        PlatformPassword = passwords.Platform,
        Generation = Generation,
        Restarts = Desired.Restarts,
        Tls = Tls,
    };

    public InstanceView ToView() => new()
    {
        Id = Id,
        TenantId = TenantId,
        Name = Name,
        Product = Product,
        Version = Version,
        Size = Size,
        Backend = Backend,
        State = Lifecycle,
        Health = Health,
        HealthDetail = HealthDetail,
        FailureReason = FailureReason,
        FailureCode = FailureCode,
        Endpoint = Endpoint,
        CreatedAt = CreatedAt,
        UpdatedAt = UpdatedAt,
        LastOperationId = LastOperationId,
        Tls = Tls,
        ActiveOperationId = Active?.OperationId,
        DeletedAt = DeletedAt,
    };

    /// <summary>Takes in what a worker observed: endpoint, health and its detail.</summary>
    public void Observe(ObservedDeployment observed, DateTimeOffset observedAt, TimeSpan degradedLatency)
    {
        ObservedAt = observedAt;
        if (observed.Endpoint is not null)
        {
            Endpoint = observed.Endpoint;
            ProbeEndpoint = observed.ProbeEndpoint;
        }

        if (Tls && observed.TlsAuthority is { Length: > 0 } authority)
        {
            TlsAuthority = authority;
        }

        (Health, HealthDetail) = observed.Status switch
        {
            DeploymentStatus.Running when observed.Health == DeploymentHealth.Healthy && observed.ProbeLatency > degradedLatency =>
                (InstanceHealth.Degraded, $"{observed.Detail} That is slower than {degradedLatency.TotalMilliseconds:0} ms."),
            DeploymentStatus.Running when observed.Health == DeploymentHealth.Healthy => (InstanceHealth.Healthy, observed.Detail),
            DeploymentStatus.Running or DeploymentStatus.Starting => (InstanceHealth.Unhealthy, observed.Detail),
            _ when Desired.Goal == DeploymentGoal.Running => (InstanceHealth.Unhealthy, observed.Detail ?? "The instance's process is not running."),
            _ => (InstanceHealth.Unknown, observed.Detail),
        };
    }
}
