using Billing;
using ControlPlane.Api;
using ControlPlane.Errors;
using ControlPlane.Instances;
using ControlPlane.Operations;
using ControlPlane.Persistence;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;

namespace ControlPlane.Tenants;

/// <summary>
/// One customer tenant: plan, quota, its instances and the idempotency keys of its requests. Every verb on an instance
/// passes through here, so quota, name uniqueness, idempotency and placement (the backend) are decided in one place,
/// one request at a time. It calls instance grains; they never call it.
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

    /// <summary>Runs a verb on one of the tenant's instances; a create makes a new one.</summary>
    Task<OperationRecord> ExecuteAsync(InstanceCommand command);

    Task<OperationRecord> CancelOperationAsync(string operationId, string requestedBy);

    [ReadOnly]
    Task<OperationRecord?> GetOperationAsync(string operationId);

    /// <summary>Its instances, oldest first; only the page's instance grains are asked.</summary>
    [ReadOnly]
    Task<Page<InstanceView>> ListInstancesAsync(bool includeDeleted, PageRequest page);

    /// <summary>
    /// An instance was deleted (it stays in the index, marked, so lists stop asking its grain) or its state was removed
    /// when its retention ended (it leaves the index). One-way: the instance never waits on its tenant, which may be
    /// waiting on it.
    /// </summary>
    [OneWay]
    Task InstanceDeletedAsync(string instanceId, bool stateRemoved);

    /// <summary>Keeps the tenant's Stripe customer id, as billing created (or found) it; the first one stays.</summary>
    Task SetStripeCustomerAsync(string customerId);

    /// <summary>
    /// Moves the tenant to another plan, recording when; the same plan changes nothing. A plan too small for the
    /// instances the tenant has is refused with the quota problem.
    /// </summary>
    Task<PlanChangeResult> ChangePlanAsync(ChangePlanCommand command);

    /// <summary>The current plan and every change, or null when no tenant with this id exists.</summary>
    [ReadOnly]
    Task<TenantPlanHistory?> GetPlanHistoryAsync();

    /// <summary>Activates every instance that is not deleted, so their reconcile loops run after a restart.</summary>
    Task WakeInstancesAsync();
}

public sealed class TenantGrain(
    [PersistentState("tenant", StorageNames.ControlPlane)] IPersistentState<TenantState> state,
    IGrainFactory grains,
    IOptions<PlanOptions> plans,
    IOptions<InstanceOptions> instances,
    IOptions<RetentionOptions> retention,
    TimeProvider clock,
    [FromKeyedServices(BillingClock.Key)] TimeProvider billingClock) : Grain, ITenantGrain
{
    private TenantState S => state.State;

    private DateTimeOffset Now => clock.GetUtcNow();

    public async Task<TenantView> InitializeAsync(InitializeTenantCommand command)
    {
        if (!state.RecordExists)
        {
            var change = StateChange.Begin(state);
            state.State = new TenantState
            {
                Id = this.GetPrimaryKeyString(),
                Name = command.Name,
                Plan = command.Plan,
                Status = TenantStatus.Active,
                CreatedAt = Now,
                CreatedBy = command.RequestedBy,
            };
            await change.WriteAsync();
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

    public async Task<OperationRecord> ExecuteAsync(InstanceCommand command)
    {
        EnsureExists();
        command = command with { TenantId = S.Id };
        if (S.IdempotencyKeys.Replay(command.Idempotency, Now) is { } earlier)
        {
            if (command.Verb != OperationType.Create && earlier.InstanceId != command.InstanceId)
            {
                throw Problems.IdempotencyKeyReused(command.Idempotency!.Key);
            }

            // The first attempt may have stopped before the instance existed: ask its grain again, which finishes the job.
            S.Instances[earlier.InstanceId] = S.Instances.GetValueOrDefault(earlier.InstanceId, new(command.Name ?? "", Now, false)) with { Deleted = false };
            return await Instance(earlier.InstanceId).GetOperationAsync(earlier.OperationId)
                ?? await Instance(earlier.InstanceId).ExecuteAsync(Placed(command, earlier.InstanceId, earlier.OperationId));
        }

        var change = StateChange.Begin(state);
        string instanceId;
        if (command.Verb == OperationType.Create)
        {
            await CheckNameAndQuotaAsync(command.Name!);
            instanceId = Ids.NewInstanceId();
            S.Instances[instanceId] = new TenantInstanceEntry(command.Name!, Now, Deleted: false);
        }
        else
        {
            instanceId = S.Instances.ContainsKey(command.InstanceId) ? command.InstanceId : throw Problems.NotFound("instance", command.InstanceId);
        }

        var operationId = Ids.NewOperationId(instanceId);
        if (command.Verb == OperationType.Create || command.Idempotency is not null)
        {
            Remember(command.Idempotency, instanceId, operationId);
            // Written before the instance acts: a retry with the same key then finds the ids and finishes the job.
            await change.WriteAsync();
        }
        try
        {
            return await Instance(instanceId).ExecuteAsync(Placed(command, instanceId, operationId));
        }
        catch (ControlPlaneException) when (command.Idempotency is { } key)
        {
            // Refused (conflict, wrong state): nothing happened, so the key stays free for a later retry.
            var release = StateChange.Begin(state);
            S.IdempotencyKeys.Remove(key.Key);
            await release.WriteAsync();
            throw;
        }
    }

    public async Task<OperationRecord> CancelOperationAsync(string operationId, string requestedBy)
    {
        EnsureExists();
        var instanceId = InstanceOf(operationId) ?? throw Problems.NotFound("operation", operationId);
        return await Instance(instanceId).CancelOperationAsync(new OperationRequest { OperationId = operationId, RequestedBy = requestedBy });
    }

    public async Task<OperationRecord?> GetOperationAsync(string operationId)
    {
        EnsureExists();
        return InstanceOf(operationId) is { } instanceId ? await Instance(instanceId).GetOperationAsync(operationId) : null;
    }

    public async Task<Page<InstanceView>> ListInstancesAsync(bool includeDeleted, PageRequest page)
    {
        EnsureExists();
        var entries = Paging.Page(
            S.Instances.Where(entry => includeDeleted || !entry.Value.Deleted).OrderBy(entry => entry.Value.CreatedAt).ThenBy(entry => entry.Key, StringComparer.Ordinal),
            entry => Paging.Key(entry.Value.CreatedAt, entry.Key),
            descending: false,
            page);
        var views = await Task.WhenAll(entries.Items.Select(entry => Instance(entry.Key).GetAsync()));
        return new Page<InstanceView>
        {
            // A page may hold fewer than its size: an instance found deleted (or pruned) since the tenant last looked is left out.
            Items = [.. views.OfType<InstanceView>().Where(view => includeDeleted || view.State != InstanceLifecycle.Deleted)],
            NextAfter = entries.NextAfter,
        };
    }

    public async Task InstanceDeletedAsync(string instanceId, bool stateRemoved)
    {
        if (!state.RecordExists || !S.Instances.TryGetValue(instanceId, out var entry) || (entry.Deleted && !stateRemoved))
        {
            return;
        }

        var change = StateChange.Begin(state);
        if (stateRemoved)
        {
            S.Instances.Remove(instanceId);
        }
        else
        {
            S.Instances[instanceId] = entry with { Deleted = true };
        }

        await change.WriteAsync();
    }

    public async Task SetStripeCustomerAsync(string customerId)
    {
        EnsureExists();
        if (S.StripeCustomerId is null)
        {
            var change = StateChange.Begin(state);
            S.StripeCustomerId = customerId;
            await change.WriteAsync();
        }
    }

    public async Task<PlanChangeResult> ChangePlanAsync(ChangePlanCommand command)
    {
        EnsureExists();
        if (S.PlanChangeKeys.Replay(command.Idempotency, Now) is { } earlier)
        {
            return earlier.Result;
        }

        var change = StateChange.Begin(state);
        var previous = S.Plan;
        if (command.Plan != previous)
        {
            var live = (await RefreshLiveInstancesAsync()).Count;
            var limit = MaxInstances(command.Plan);
            if (live > limit)
            {
                throw Problems.QuotaExceededByPlan(command.Plan, limit, live);
            }

            // Billing's clock: the time billing prices each minute by, stamped as the change is stored.
            S.PlanChanges.Add(new TenantPlanChange { FromPlan = previous, ToPlan = command.Plan, At = billingClock.GetUtcNow(), RequestedBy = command.RequestedBy });
            S.Plan = command.Plan;
        }

        var result = new PlanChangeResult { TenantId = S.Id, PreviousPlan = previous, Plan = S.Plan, PlanSince = PlanSince(), Changed = command.Plan != previous };
        if (command.Idempotency is { } key)
        {
            S.PlanChangeKeys[key.Key] = new PlanChangeIdempotencyRecord(key.Fingerprint, result, Now);
        }

        if (result.Changed || command.Idempotency is not null)
        {
            await change.WriteAsync();
        }

        return result;
    }

    public Task<TenantPlanHistory?> GetPlanHistoryAsync() =>
        Task.FromResult(state.RecordExists ? new TenantPlanHistory { Plan = S.Plan, Changes = [.. S.PlanChanges] } : null);

    public async Task WakeInstancesAsync()
    {
        if (state.RecordExists)
        {
            await Task.WhenAll(S.Instances.Where(entry => !entry.Value.Deleted).Select(entry => Instance(entry.Key).WakeAsync()));
        }
    }

    /// <summary>The verb as the instance receives it: with its ids and, for a create, where it is placed.</summary>
    private InstanceCommand Placed(InstanceCommand command, string instanceId, string operationId) => command with
    {
        InstanceId = instanceId,
        OperationId = operationId,
        Backend = command.Verb == OperationType.Create ? instances.Value.DefaultBackend : null,
    };

    /// <summary>
    /// Refuses a name in use or a full quota, asking each instance's grain (the truth). Instances found deleted stop
    /// counting, and their entries go once their retention has ended (the instance's grain forgets them then too).
    /// </summary>
    private async Task CheckNameAndQuotaAsync(string name)
    {
        var live = await RefreshLiveInstancesAsync();
        if (live.Any(view => view.Name == name))
        {
            throw Problems.NameTaken(name);
        }

        foreach (var gone in S.Instances.Where(entry => entry.Value.DeletedAt + retention.Value.DeletedInstances < Now).Select(entry => entry.Key).ToList())
        {
            S.Instances.Remove(gone);
            foreach (var operation in S.OperationInstances.Where(entry => entry.Value == gone).Select(entry => entry.Key).ToList())
            {
                S.OperationInstances.Remove(operation);
            }
        }

        var limit = MaxInstances(S.Plan);
        if (live.Count >= limit)
        {
            throw Problems.QuotaExceeded(S.Plan, limit);
        }
    }

    /// <summary>The instances that are not deleted, asking each one's grain (the truth); ones found deleted are marked so.</summary>
    private async Task<List<InstanceView>> RefreshLiveInstancesAsync()
    {
        var candidates = S.Instances.Where(entry => !entry.Value.Deleted).Select(entry => entry.Key).ToList();
        var views = await Task.WhenAll(candidates.Select(id => Instance(id).GetAsync()));
        var live = new List<InstanceView>();
        for (var i = 0; i < candidates.Count; i++)
        {
            if (views[i] is not { State: not InstanceLifecycle.Deleted } view)
            {
                S.Instances[candidates[i]] = S.Instances[candidates[i]] with { Deleted = true, DeletedAt = views[i]?.DeletedAt ?? Now };
                continue;
            }

            live.Add(view);
        }

        return live;
    }

    private void Remember(IdempotencyKey? key, string instanceId, string operationId)
    {
        if (key is null)
        {
            return;
        }

        S.IdempotencyKeys[key.Key] = new IdempotencyRecord(key.Fingerprint, instanceId, operationId, Now);
        var excess = S.IdempotencyKeys.Count - retention.Value.IdempotencyKeysPerTenant;
        foreach (var oldest in S.IdempotencyKeys.OrderBy(entry => entry.Value.CreatedAt).Take(Math.Max(0, excess)).Select(entry => entry.Key).ToList())
        {
            S.IdempotencyKeys.Remove(oldest);
        }
    }

    /// <summary>The tenant's instance an operation belongs to, or null when it is none of this tenant's.</summary>
    private string? InstanceOf(string operationId) =>
        (Ids.InstanceOfOperation(operationId) ?? S.OperationInstances.GetValueOrDefault(operationId)) is { } instanceId && S.Instances.ContainsKey(instanceId)
            ? instanceId
            : null;

    private int MaxInstances(string plan) => plans.Value.Definitions.TryGetValue(plan, out var definition) ? definition.MaxInstances : 0;

    private DateTimeOffset PlanSince() => S.PlanChanges.Count > 0 ? S.PlanChanges[^1].At : S.CreatedAt;

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
        MaxInstances = MaxInstances(S.Plan),
        InstanceCount = instanceCount,
        StripeCustomerId = S.StripeCustomerId,
        PlanSince = PlanSince(),
    };
}
