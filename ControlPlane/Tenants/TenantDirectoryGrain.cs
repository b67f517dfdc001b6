using ControlPlane.Api;
using ControlPlane.Persistence;
using Orleans.Concurrency;

namespace ControlPlane.Tenants;

/// <summary>
/// The list of all tenants (one grain, key 0): where new tenants get their ids, where the fleet is
/// enumerated, and where a retried "create tenant" finds the tenant it already created.
/// </summary>
public interface ITenantDirectoryGrain : IGrainWithIntegerKey
{
    Task<TenantView> CreateTenantAsync(CreateTenantCommand command);

    /// <summary>Every tenant's id, oldest first.</summary>
    [ReadOnly]
    Task<IReadOnlyList<string>> ListTenantIdsAsync();

    /// <summary>A page of tenant ids, oldest first.</summary>
    [ReadOnly]
    Task<Page<string>> ListTenantIdsAsync(PageRequest page);
}

public sealed class TenantDirectoryState
{
    public Dictionary<string, TenantDirectoryEntry> Tenants { get; set; } = new(StringComparer.Ordinal);
    public Dictionary<string, TenantIdempotencyRecord> IdempotencyKeys { get; set; } = new(StringComparer.Ordinal);
}

public sealed record TenantDirectoryEntry(string Name, DateTimeOffset CreatedAt);

public sealed class TenantDirectoryGrain(
    [PersistentState("tenant-directory", StorageNames.ControlPlane)] IPersistentState<TenantDirectoryState> state,
    IGrainFactory grains,
    TimeProvider clock) : Grain, ITenantDirectoryGrain
{
    public async Task<TenantView> CreateTenantAsync(CreateTenantCommand command)
    {
        var now = clock.GetUtcNow();
        var tenants = state.State;
        string tenantId;
        if (tenants.IdempotencyKeys.Replay(command.Idempotency, now) is { } earlier)
        {
            tenantId = earlier.TenantId;
        }
        else
        {
            tenantId = Ids.NewTenantId();
            tenants.Tenants[tenantId] = new TenantDirectoryEntry(command.Name, now);
            if (command.Idempotency is { } newKey)
            {
                tenants.IdempotencyKeys[newKey.Key] = new TenantIdempotencyRecord(newKey.Fingerprint, tenantId, now);
            }

            // The id is durable before the tenant exists, so a retry completes the same tenant instead of making a second.
            await state.WriteStateAsync();
        }

        return await grains.GetGrain<ITenantGrain>(tenantId).InitializeAsync(new InitializeTenantCommand
        {
            Name = command.Name,
            Plan = command.Plan,
            RequestedBy = command.RequestedBy,
        });
    }

    public Task<IReadOnlyList<string>> ListTenantIdsAsync() => Task.FromResult<IReadOnlyList<string>>([.. Ordered().Select(entry => entry.Key)]);

    public Task<Page<string>> ListTenantIdsAsync(PageRequest page) =>
        Task.FromResult(Paging.Page(Ordered(), entry => Paging.Key(entry.Value.CreatedAt, entry.Key), descending: false, page)
            .Select(entry => entry.Key));

    private IOrderedEnumerable<KeyValuePair<string, TenantDirectoryEntry>> Ordered() =>
        state.State.Tenants.OrderBy(entry => entry.Value.CreatedAt).ThenBy(entry => entry.Key, StringComparer.Ordinal);
}
