using Orleans.Concurrency;
using ControlPlane.Errors;
using ControlPlane.Instances;
using ControlPlane.Operations;
using ControlPlane.Persistence;
using Microsoft.Extensions.Options;

namespace ControlPlane.Tenants;

/// <summary>
/// One customer tenant: plan, quota, its instances and the idempotency keys of its requests. Every
/// mutation of an instance passes through here, so quota, name uniqueness and idempotency are decided
/// in one place, one request at a time. It calls instance grains; they never call it.
/// </summary>
public interface ITenantGrain : IGrainWithStringKey
{
    Task<TenantView> InitializeAsync(InitializeTenantCommand command);

    /// <summary>The tenant, or null when no tenant with this id exists.</summary>
    [ReadOnly]
    Task<TenantView?> GetAsync();

    /// <summary>Whether the tenant exists: the cheap check every tenant-scoped request makes first.</summary>
    [ReadOnly]
    Task<bool> ExistsAsync();

    Task<OperationRecord> CreateInstanceAsync(NewInstanceCommand command);

    Task<OperationRecord> MutateInstanceAsync(InstanceMutationCommand command);

    Task<OperationRecord> CancelOperationAsync(string operationId, string requestedBy);

    [ReadOnly]
    Task<OperationRecord?> GetOperationAsync(string operationId);

    [ReadOnly]
    Task<IReadOnlyList<InstanceView>> ListInstancesAsync(bool includeDeleted);

    /// <summary>Keeps the tenant's Stripe customer id, as billing created (or found) it; the first one stays.</summary>
    Task SetStripeCustomerAsync(string customerId);

    /// <summary>Activates every instance that is not deleted, so their reconcile loops run after a restart.</summary>
    Task WakeInstancesAsync();
}

public sealed class TenantGrain(
    [PersistentState("tenant", StorageNames.ControlPlane)] IPersistentState<TenantState> state,
    IGrainFactory grains,
    IOptions<PlanOptions> plans,
    TimeProvider clock) : Grain, ITenantGrain
{
    private TenantState S => state.State;

    public async Task<TenantView> InitializeAsync(InitializeTenantCommand command)
    {
        if (!state.RecordExists)
        {
            state.State = new TenantState
            {
                Id = this.GetPrimaryKeyString(),
                Name = command.Name,
                Plan = command.Plan,
                Status = TenantStatus.Active,
                CreatedAt = clock.GetUtcNow(),
                CreatedBy = command.RequestedBy,
            };
            await state.WriteStateAsync();
        }

        return ToView(S.Instances.Count(entry => !entry.Value.Deleted));
    }

    public Task<bool> ExistsAsync() => Task.FromResult(state.RecordExists);

    public async Task<TenantView?> GetAsync()
    {
        if (!state.RecordExists)
        {
            return null;
        }

        var views = await Task.WhenAll(S.Instances.Where(entry => !entry.Value.Deleted).Select(entry => Instance(entry.Key).GetAsync()));
        return ToView(views.Count(view => view is not null && view.State != InstanceLifecycle.Deleted));
    }

    public async Task<OperationRecord> CreateInstanceAsync(NewInstanceCommand command)
    {
        EnsureExists();
        if (S.IdempotencyKeys.Replay(command.Idempotency, clock.GetUtcNow()) is { } earlier)
        {
            // The first attempt may have stopped before the instance existed (and a refresh then set it aside as
            // gone): ask its grain again from now on; the next refresh sets the flag from the grain's truth.
            S.Instances[earlier.InstanceId] = S.Instances[earlier.InstanceId] with { Deleted = false };
            return await Instance(earlier.InstanceId).CreateAsync(ToCreateCommand(command, earlier.OperationId));
        }

        var live = await RefreshLiveInstancesAsync();
        if (live.Any(entry => entry.Value.Name == command.Name))
        {
            throw Problems.NameTaken(command.Name);
        }

        var limit = MaxInstances();
        if (live.Count >= limit)
        {
            throw Problems.QuotaExceeded(S.Plan, limit);
        }

        var instanceId = Ids.NewInstanceId();
        var operationId = Ids.NewOperationId();
        S.Instances[instanceId] = new TenantInstanceEntry(command.Name, clock.GetUtcNow(), Deleted: false);
        S.OperationInstances[operationId] = instanceId;
        Remember(command.Idempotency, instanceId, operationId);
        // Written before the instance exists: a retry with the same key then finds the ids and finishes the job.
        await state.WriteStateAsync();
        return await Instance(instanceId).CreateAsync(ToCreateCommand(command, operationId));

        CreateInstanceCommand ToCreateCommand(NewInstanceCommand c, string opId) => new()
        {
            OperationId = opId,
            RequestedBy = c.RequestedBy,
            TenantId = S.Id,
            Name = c.Name,
            Product = c.Product,
            Version = c.Version,
            Size = c.Size,
            Backend = c.Backend,
        };
    }

    public async Task<OperationRecord> MutateInstanceAsync(InstanceMutationCommand command)
    {
        EnsureExists();
        if (!S.Instances.ContainsKey(command.InstanceId))
        {
            throw Problems.NotFound("instance", command.InstanceId);
        }

        if (S.IdempotencyKeys.Replay(command.Idempotency, clock.GetUtcNow()) is { } earlier)
        {
            if (earlier.InstanceId != command.InstanceId)
            {
                throw Problems.IdempotencyKeyReused(command.Idempotency!.Key);
            }

            return await Instance(earlier.InstanceId).GetOperationAsync(earlier.OperationId)
                ?? await ApplyMutationAsync(command, earlier.OperationId);
        }

        var operationId = Ids.NewOperationId();
        S.OperationInstances[operationId] = command.InstanceId;
        Remember(command.Idempotency, command.InstanceId, operationId);
        await state.WriteStateAsync();
        try
        {
            return await ApplyMutationAsync(command, operationId);
        }
        catch (ControlPlaneException)
        {
            // Refused (conflict, wrong state): nothing happened, so the key stays free for a later retry.
            S.OperationInstances.Remove(operationId);
            if (command.Idempotency is { } key)
            {
                S.IdempotencyKeys.Remove(key.Key);
            }

            await state.WriteStateAsync();
            throw;
        }
    }

    public async Task<OperationRecord> CancelOperationAsync(string operationId, string requestedBy)
    {
        EnsureExists();
        var instanceId = S.OperationInstances.GetValueOrDefault(operationId) ?? throw Problems.NotFound("operation", operationId);
        return await Instance(instanceId).CancelOperationAsync(new OperationRequest { OperationId = operationId, RequestedBy = requestedBy });
    }

    public async Task<OperationRecord?> GetOperationAsync(string operationId)
    {
        EnsureExists();
        return S.OperationInstances.TryGetValue(operationId, out var instanceId)
            ? await Instance(instanceId).GetOperationAsync(operationId)
            : null;
    }

    public async Task<IReadOnlyList<InstanceView>> ListInstancesAsync(bool includeDeleted)
    {
        EnsureExists();
        var views = await Task.WhenAll(S.Instances
            .Where(entry => includeDeleted || !entry.Value.Deleted)
            .Select(entry => Instance(entry.Key).GetAsync()));
        return [.. views
            .OfType<InstanceView>()
            .Where(view => includeDeleted || view.State != InstanceLifecycle.Deleted)
            .OrderBy(view => view.CreatedAt)];
    }

    public async Task SetStripeCustomerAsync(string customerId)
    {
        EnsureExists();
        if (S.StripeCustomerId is null)
        {
            S.StripeCustomerId = customerId;
            await state.WriteStateAsync();
        }
    }

    public async Task WakeInstancesAsync()
    {
        if (!state.RecordExists)
        {
            return;
        }

        await Task.WhenAll(S.Instances.Where(entry => !entry.Value.Deleted).Select(entry => Instance(entry.Key).WakeAsync()));
    }

    private Task<OperationRecord> ApplyMutationAsync(InstanceMutationCommand command, string operationId)
    {
        var instance = Instance(command.InstanceId);
        var request = new OperationRequest { OperationId = operationId, RequestedBy = command.RequestedBy };
        return command.Kind switch
        {
            InstanceMutationKind.ChangeSpec => instance.ChangeSpecAsync(new ChangeSpecCommand
            {
                OperationId = operationId,
                RequestedBy = command.RequestedBy,
                Version = command.Version!,
                Size = command.Size!,
            }),
            InstanceMutationKind.Stop => instance.StopAsync(request),
            InstanceMutationKind.Start => instance.StartAsync(request),
            InstanceMutationKind.Delete => instance.DeleteAsync(request),
            _ => throw new ArgumentOutOfRangeException(nameof(command), command.Kind, "Unknown mutation."),
        };
    }

    /// <summary>
    /// The instances that still count against the quota, asking each instance's grain (the truth) and
    /// remembering the ones that are gone so they are not asked again.
    /// </summary>
    private async Task<Dictionary<string, TenantInstanceEntry>> RefreshLiveInstancesAsync()
    {
        var candidates = S.Instances.Where(entry => !entry.Value.Deleted).Select(entry => entry.Key).ToList();
        var views = await Task.WhenAll(candidates.Select(id => Instance(id).GetAsync()));
        var live = new Dictionary<string, TenantInstanceEntry>(StringComparer.Ordinal);
        for (var i = 0; i < candidates.Count; i++)
        {
            var id = candidates[i];
            if (views[i] is null || views[i]!.State == InstanceLifecycle.Deleted)
            {
                S.Instances[id] = S.Instances[id] with { Deleted = true };
            }
            else
            {
                live[id] = S.Instances[id];
            }
        }

        return live;
    }

    private void Remember(IdempotencyKey? key, string instanceId, string operationId)
    {
        if (key is not null)
        {
            S.IdempotencyKeys[key.Key] = new IdempotencyRecord(key.Fingerprint, instanceId, operationId, clock.GetUtcNow());
        }
    }

    private int MaxInstances() => plans.Value.Definitions.TryGetValue(S.Plan, out var plan) ? plan.MaxInstances : 0;

    private IInstanceGrain Instance(string instanceId) => grains.GetGrain<IInstanceGrain>(instanceId);

    private void EnsureExists()
    {
        if (!state.RecordExists)
        {
            throw Problems.NotFound("tenant", this.GetPrimaryKeyString());
        }
    }

    private TenantView ToView(int instanceCount) => new()
    {
        Id = S.Id,
        Name = S.Name,
        Plan = S.Plan,
        Status = S.Status,
        CreatedAt = S.CreatedAt,
        CreatedBy = S.CreatedBy,
        MaxInstances = MaxInstances(),
        InstanceCount = instanceCount,
        StripeCustomerId = S.StripeCustomerId,
    };
}
