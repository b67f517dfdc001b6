using Provisioner.Deployments;

namespace Billing.Usage;

/// <summary>
/// What billing needs of an instance's lifecycle. The control plane maps its own states onto these: the SLA excludes
/// customer stops (<see cref="Stopped"/> covers stopping, stopped and starting), customer changes (<see cref="Updating"/>)
/// and deletion, and instance-hours count only <see cref="Running"/>.
/// </summary>
public enum MeteredState
{
    Provisioning,
    Running,
    Updating,
    Stopped,
    Failed,
    Deleted,
}

/// <summary>Where a probe connects, with the user and password it authenticates with (never logged: <see cref="Secret"/> redacts itself).</summary>
[GenerateSerializer, Immutable]
public sealed record ProbeTarget
{
    [Id(0)] public required string Host { get; init; }
    [Id(1)] public required int Port { get; init; }
    [Id(2)] public required Secret Password { get; init; }
    /// <summary>For a TLS instance: the CA (PEM) its certificate must chain to; null for plaintext.</summary>
    [Id(3)] public string? TlsAuthority { get; init; }
    /// <summary>The user it signs in as (the platform's own); null: the default user.</summary>
    [Id(4)] public string? Username { get; init; }
}

/// <summary>An instance's lifecycle as its own grain last stored it, and how to probe it.</summary>
[GenerateSerializer, Immutable]
public sealed record InstanceLifecycleNotice
{
    [Id(0)] public required string TenantId { get; init; }
    [Id(1)] public required MeteredState State { get; init; }
    /// <summary>The size that is deployed (not the one an operation moves to).</summary>
    [Id(2)] public required string Size { get; init; }
    /// <summary>
    /// Where the SLA probe connects, with the password; null without an endpoint. Pushed with the lifecycle, so
    /// metering never calls back into the instance's grain (which may be waiting on it), and kept only in memory.
    /// </summary>
    [Id(3)] public ProbeTarget? Probe { get; init; }
    /// <summary>
    /// When the instance entered this state and size, as it stored the change: billing counts from then, not from when
    /// it heard (a notice retried after billing was unreachable is late). Null from an instance stored before this existed.
    /// </summary>
    [Id(4)] public DateTimeOffset? ChangedAt { get; init; }
}

/// <summary>
/// Meters one hosted instance (keyed by instance id): records its lifecycle, probes it for the SLA while its SLA counts,
/// samples its operation counters, and appends its hourly usage to the ledger once each hour has ended.
/// </summary>
public interface IInstanceMeteringGrain : IGrainWithStringKey
{
    /// <summary>The instance's grain reports its lifecycle after every durable change and after activation; a repeated notice records nothing.</summary>
    Task ObserveLifecycleAsync(InstanceLifecycleNotice notice);

    /// <summary>
    /// Probes the instance now (when its SLA counts) and appends the usage of every hour that has ended. A timer calls it
    /// every <c>Billing:Sla:ProbeInterval</c>; tests call it to step a fake clock minute by minute.
    /// </summary>
    Task MeasureAsync();
}
