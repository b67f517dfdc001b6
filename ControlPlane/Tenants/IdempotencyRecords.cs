using ControlPlane.Errors;

namespace ControlPlane.Tenants;

/// <summary>What a request sent with an <c>Idempotency-Key</c> led to, kept so a retry gets the same answer.</summary>
public interface IIdempotencyRecord
{
    string Fingerprint { get; }

    DateTimeOffset CreatedAt { get; }
}

/// <summary>An instance mutation: the operation it started.</summary>
public sealed record IdempotencyRecord(string Fingerprint, string InstanceId, string OperationId, DateTimeOffset CreatedAt) : IIdempotencyRecord;

/// <summary>A tenant creation: the tenant it created.</summary>
public sealed record TenantIdempotencyRecord(string Fingerprint, string TenantId, DateTimeOffset CreatedAt) : IIdempotencyRecord;

/// <summary>A plan change: what it answered, so a retry neither changes the plan again nor undoes a later change.</summary>
public sealed record PlanChangeIdempotencyRecord(string Fingerprint, PlanChangeResult Result, DateTimeOffset CreatedAt) : IIdempotencyRecord;

public static class IdempotencyRecords
{
    /// <summary>How long a key is remembered, as Stripe does.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromHours(24);

    /// <summary>
    /// How many keys one scope (a tenant's instance mutations, its plan changes, tenant creation) remembers. A new key
    /// beyond it is refused with 429 until the oldest is forgotten, never remembered by forgetting a live one: a
    /// forgotten key's retry would run twice. Bounds what a tenant's state can grow to.
    /// </summary>
    public const int MaxRemembered = 10_000;

    /// <summary>
    /// The record of an earlier request with the same key, or null for a key not seen in the window; a
    /// different request under a remembered key is refused, and so is a new key when <see cref="MaxRemembered"/> are
    /// remembered. Forgets keys older than the window.
    /// </summary>
    public static TRecord? Replay<TRecord>(this Dictionary<string, TRecord> records, IdempotencyKey? key, DateTimeOffset now)
        where TRecord : class, IIdempotencyRecord
    {
        if (key is null)
        {
            return null;
        }

        foreach (var expired in records.Where(entry => entry.Value.CreatedAt < now - Window).Select(entry => entry.Key).ToList())
        {
            records.Remove(expired);
        }

        if (!records.TryGetValue(key.Key, out var record))
        {
            return records.Count < MaxRemembered
                ? null
                : throw Problems.TooManyIdempotencyKeys(MaxRemembered, records.Values.Min(remembered => remembered.CreatedAt) + Window - now);
        }

        return record.Fingerprint == key.Fingerprint ? record : throw Problems.IdempotencyKeyReused(key.Key);
    }
}
