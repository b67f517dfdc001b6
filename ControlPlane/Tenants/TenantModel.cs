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
}

/// <summary>One of the tenant's instances as the tenant remembers it: enough to list it in order and count its quota.</summary>
/// <param name="Deleted">It was found deleted (or never came to exist); it no longer counts against the quota.</param>
/// <param name="DeletedAt">When it was deleted; the entry goes when the instance's retention ends.</param>
public sealed record TenantInstanceEntry(string Name, DateTimeOffset CreatedAt, bool Deleted, DateTimeOffset? DeletedAt = null);
