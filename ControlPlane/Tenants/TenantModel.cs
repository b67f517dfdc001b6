namespace ControlPlane.Tenants;

public enum TenantStatus
{
    Active,
    Suspended,
}

[GenerateSerializer, Immutable]
public sealed record TenantView
{
    [Id(0)] public required string Id { get; init; }
    [Id(1)] public required string Name { get; init; }
    [Id(2)] public required string Plan { get; init; }
    [Id(3)] public required TenantStatus Status { get; init; }
    [Id(4)] public required DateTimeOffset CreatedAt { get; init; }
    [Id(5)] public required string CreatedBy { get; init; }
    [Id(6)] public required int MaxInstances { get; init; }
    [Id(7)] public required int InstanceCount { get; init; }
    /// <summary>The tenant's Stripe customer, once billing has created it.</summary>
    [Id(8)] public string? StripeCustomerId { get; init; }
    /// <summary>Since when <see cref="Plan"/> is in force: its last change, or the tenant's creation.</summary>
    [Id(9)] public DateTimeOffset? PlanSince { get; init; }
}

/// <summary>A move from one plan to another, stamped with billing's clock when it was stored: billing prices each minute by these.</summary>
[GenerateSerializer, Immutable]
public sealed record TenantPlanChange
{
    [Id(0)] public required string FromPlan { get; init; }
    [Id(1)] public required string ToPlan { get; init; }
    [Id(2)] public required DateTimeOffset At { get; init; }
    [Id(3)] public required string RequestedBy { get; init; }
}

/// <summary>The plan a tenant is on now and every change that led there, oldest first.</summary>
[GenerateSerializer, Immutable]
public sealed record TenantPlanHistory
{
    [Id(0)] public required string Plan { get; init; }
    [Id(1)] public required IReadOnlyList<TenantPlanChange> Changes { get; init; }

    /// <summary>The plan before any recorded change: the one the tenant was created on.</summary>
    public string InitialPlan => Changes.Count > 0 ? Changes[0].FromPlan : Plan;
}

[GenerateSerializer, Immutable]
public sealed record ChangePlanCommand
{
    [Id(0)] public required string Plan { get; init; }
    [Id(1)] public required string RequestedBy { get; init; }
    [Id(2)] public IdempotencyKey? Idempotency { get; init; }
}

/// <summary>What a plan change answered: <see cref="Changed"/> is false when the tenant was already on the plan.</summary>
[GenerateSerializer, Immutable]
public sealed record PlanChangeResult
{
    [Id(0)] public required string TenantId { get; init; }
    [Id(1)] public required string PreviousPlan { get; init; }
    [Id(2)] public required string Plan { get; init; }
    [Id(3)] public required DateTimeOffset PlanSince { get; init; }
    [Id(4)] public required bool Changed { get; init; }
}

/// <summary>An <c>Idempotency-Key</c> and a fingerprint of the request it came with.</summary>
[GenerateSerializer, Immutable]
public sealed record IdempotencyKey
{
    [Id(0)] public required string Key { get; init; }
    [Id(1)] public required string Fingerprint { get; init; }
}

[GenerateSerializer, Immutable]
public sealed record InitializeTenantCommand
{
    [Id(0)] public required string Name { get; init; }
    [Id(1)] public required string Plan { get; init; }
    [Id(2)] public required string RequestedBy { get; init; }
}

[GenerateSerializer, Immutable]
public sealed record CreateTenantCommand
{
    [Id(0)] public required string Name { get; init; }
    [Id(1)] public required string Plan { get; init; }
    [Id(2)] public required string RequestedBy { get; init; }
    [Id(3)] public IdempotencyKey? Idempotency { get; init; }
}

/// <summary>The durable state of a tenant's grain (stored as JSON).</summary>
public sealed class TenantState
{
    public string Id { get; set; } = "";
    public string Name { get; set; } = "";
    public string Plan { get; set; } = "";
    public TenantStatus Status { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public string CreatedBy { get; set; } = "";
    public string? StripeCustomerId { get; set; }
    public Dictionary<string, TenantInstanceEntry> Instances { get; set; } = new(StringComparer.Ordinal);
    /// <summary>
    /// Which instance each operation of the earlier id form belongs to. New operation ids name their instance
    /// (<see cref="Ids.InstanceOfOperation"/>); this only shrinks, as those instances are pruned.
    /// </summary>
    public Dictionary<string, string> OperationInstances { get; set; } = new(StringComparer.Ordinal);
    public Dictionary<string, IdempotencyRecord> IdempotencyKeys { get; set; } = new(StringComparer.Ordinal);
    /// <summary>Every plan change, oldest first; kept for good, since billing prices past months by it.</summary>
    public List<TenantPlanChange> PlanChanges { get; set; } = [];
    public Dictionary<string, PlanChangeIdempotencyRecord> PlanChangeKeys { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>One of the tenant's instances as the tenant remembers it: enough to list it in order and count its quota.</summary>
/// <param name="Deleted">It was found deleted (or never came to exist); it no longer counts against the quota.</param>
/// <param name="DeletedAt">When it was deleted; the entry goes when the instance's retention ends.</param>
public sealed record TenantInstanceEntry(string Name, DateTimeOffset CreatedAt, bool Deleted, DateTimeOffset? DeletedAt = null);
