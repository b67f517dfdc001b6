using ControlPlane.Api;
using ControlPlane.Errors;
using ControlPlane.Instances;
using ControlPlane.Operations;
using ControlPlane.Persistence;
using ControlPlane.Tenants;
using ControlPlane.Tests.Support;
using Provisioner.Deployments;
using Provisioner.Messaging;

namespace ControlPlane.Tests.Grains;

/// <summary>Tenant and instance grains in an Orleans test cluster, driving real Garnet processes.</summary>
public sealed class InstanceGrainTests : IAsyncLifetime
{
    private GrainCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await GrainCluster.StartAsync();

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task Tenant_creates_an_instance_that_becomes_running()
    {
        var tenant = await CreateTenantAsync();

        var operation = await tenant.ExecuteAsync(NewInstance("alpha"));
        var finished = await WaitForOperationAsync(operation);

        Assert.Equal(OperationStatus.Succeeded, finished.Status);
        var view = await Instance(operation.InstanceId).GetAsync();
        Assert.Equal(InstanceLifecycle.Running, view!.State);
        Assert.Equal(InstanceHealth.Healthy, view.Health);
        Assert.NotNull(view.Endpoint);
        Assert.Single(HostedProcesses.Under(_cluster.InstanceDirectory(operation.InstanceId)));
    }

    [Fact]
    public async Task A_second_mutation_during_an_operation_is_refused_with_the_running_operation_named()
    {
        var tenant = await CreateTenantAsync();
        var create = await tenant.ExecuteAsync(NewInstance("busy"));

        var refusal = await Assert.ThrowsAsync<ControlPlaneException>(() => tenant.ExecuteAsync(new InstanceCommand
        {
            InstanceId = create.InstanceId,
            Verb = OperationType.Stop,
            RequestedBy = "test",
        }));

        Assert.Equal(ProblemKind.Conflict, refusal.Kind);
        Assert.Equal("operation-in-progress", refusal.Type);
        Assert.Equal(create.Id, refusal.Extensions["operationId"]);
        await WaitForOperationAsync(create);
    }

    [Fact]
    public async Task Same_idempotency_key_returns_the_same_operation_and_a_different_request_under_it_is_refused()
    {
        var tenant = await CreateTenantAsync();
        var key = new IdempotencyKey { Key = "retry-1", Fingerprint = "request-a" };

        var first = await tenant.ExecuteAsync(NewInstance("once") with { Idempotency = key });
        var second = await tenant.ExecuteAsync(NewInstance("once") with { Idempotency = key });
        var refusal = await Assert.ThrowsAsync<ControlPlaneException>(() =>
            tenant.ExecuteAsync(NewInstance("other") with { Idempotency = key with { Fingerprint = "request-b" } }));

        Assert.Equal(first.Id, second.Id);
        Assert.Equal(first.InstanceId, second.InstanceId);
        Assert.Equal("idempotency-key-reused", refusal.Type);
        await WaitForOperationAsync(first);
        Assert.Single((await tenant.ListInstancesAsync(includeDeleted: true, PageRequest.First())).Items);
    }

    [Fact]
    public async Task Quota_of_the_plan_is_enforced()
    {
        var tenant = _cluster.Grains.GetGrain<ITenantGrain>(Ids.NewTenantId());
        await tenant.InitializeAsync(new InitializeTenantCommand { Name = "Tiny", Plan = "none", RequestedBy = "test" });

        var refusal = await Assert.ThrowsAsync<ControlPlaneException>(() => tenant.ExecuteAsync(NewInstance("over")));

        Assert.Equal(ProblemKind.Forbidden, refusal.Kind);
        Assert.Equal("quota-exceeded", refusal.Type);
    }

    [Fact]
    public async Task Late_duplicated_and_stale_events_never_move_an_instance_backwards()
    {
        var tenant = await CreateTenantAsync();
        var create = await WaitForOperationAsync(await tenant.ExecuteAsync(NewInstance("steady")));
        var instance = Instance(create.InstanceId);
        var before = await instance.GetAsync();

        var now = DateTimeOffset.UtcNow;
        await instance.ApplyEventAsync(new DeploymentFailed
        {
            InstanceId = create.InstanceId,
            OperationId = create.Id,
            Generation = 1,
            Purpose = ApplyPurpose.Operation,
            OccurredAt = now,
            ErrorCode = "process-exited",
            ErrorMessage = "A late failure for a finished operation.",
            Observed = ObservedDeployment.Absent,
        });
        await instance.ApplyEventAsync(new DeploymentApplied
        {
            InstanceId = create.InstanceId,
            OperationId = create.Id,
            Generation = 1,
            Purpose = ApplyPurpose.Operation,
            OccurredAt = now,
            Observed = ObservedDeployment.Absent,
        });
        await instance.ApplyEventAsync(new DeploymentApplied
        {
            InstanceId = create.InstanceId,
            Generation = 0,
            Purpose = ApplyPurpose.Reconcile,
            OccurredAt = now,
            Observed = ObservedDeployment.Absent,
        });

        var after = await instance.GetAsync();
        var operation = await instance.GetOperationAsync(create.Id);
        Assert.Equal(InstanceLifecycle.Running, after!.State);
        Assert.Equal(before!.Endpoint, after.Endpoint);
        Assert.Equal(OperationStatus.Succeeded, operation!.Status);
        Assert.Equal(create.Log.Length, operation.Log.Length);
        Assert.Null(operation.Error);
    }

    [Fact]
    public async Task Step_events_delivered_twice_are_recorded_once()
    {
        var tenant = await CreateTenantAsync();
        var create = await tenant.ExecuteAsync(NewInstance("twice"));
        var duplicate = new DeploymentStepStarted
        {
            InstanceId = create.InstanceId,
            OperationId = create.Id,
            Generation = 1,
            Purpose = ApplyPurpose.Operation,
            OccurredAt = DateTimeOffset.UtcNow,
            StepNumber = 1,
            StepCount = 3,
            StepName = "Reserve port and prepare data directory",
        };

        // Whichever of these and the worker's own arrives first, the others are duplicates.
        await Instance(create.InstanceId).ApplyEventAsync(duplicate);
        await Instance(create.InstanceId).ApplyEventAsync(duplicate);
        var finished = await WaitForOperationAsync(create);

        Assert.Equal(OperationStatus.Succeeded, finished.Status);
        Assert.Equal(3, finished.Steps.Length);
        Assert.Equal(3, finished.Steps.Select(step => step.Name).Distinct().Count());
        Assert.All(finished.Steps, step => Assert.Equal(StepStatus.Succeeded, step.Status));
    }

    [Fact]
    public async Task Everything_survives_a_restart_and_the_running_process_is_adopted_not_duplicated()
    {
        var tenant = await CreateTenantAsync();
        var tenantId = tenant.GetPrimaryKeyString();
        var create = await WaitForOperationAsync(await tenant.ExecuteAsync(NewInstance("durable")));
        var processBefore = Assert.Single(HostedProcesses.Under(_cluster.InstanceDirectory(create.InstanceId)));

        await _cluster.RestartAsync();

        var restartedTenant = await _cluster.Grains.GetGrain<ITenantGrain>(tenantId).GetAsync();
        var view = await Instance(create.InstanceId).GetAsync();
        var operation = await Instance(create.InstanceId).GetOperationAsync(create.Id);
        Assert.Equal("Grain Test Tenant", restartedTenant!.Name);
        Assert.Equal(1, restartedTenant.InstanceCount);
        Assert.Equal(InstanceLifecycle.Running, view!.State);
        Assert.Equal(OperationStatus.Succeeded, operation!.Status);
        var processAfter = Assert.Single(HostedProcesses.Under(_cluster.InstanceDirectory(create.InstanceId)));
        Assert.Equal(processBefore, processAfter);
    }

    [Fact]
    public async Task Reconcile_reminder_exists_while_the_instance_lives_and_after_its_deletion_until_its_retention_ends()
    {
        // Behaviour changed with retention (issue 8): the reminder used to go with the deletion; it now stays, on a
        // long period, to remove the deleted instance's state when its retention ends.
        var tenant = await CreateTenantAsync();
        var create = await WaitForOperationAsync(await tenant.ExecuteAsync(NewInstance("reminded")));
        Assert.Equal(1, await CountRemindersAsync(create.InstanceId));

        var delete = await tenant.ExecuteAsync(new InstanceCommand { InstanceId = create.InstanceId, Verb = OperationType.Delete, RequestedBy = "test" });
        await WaitForOperationAsync(delete);

        Assert.Equal(InstanceLifecycle.Deleted, (await Instance(create.InstanceId).GetAsync())!.State);
        Assert.Equal(1, await CountRemindersAsync(create.InstanceId));
        Assert.Empty(HostedProcesses.Under(_cluster.InstanceDirectory(create.InstanceId)));
    }

    private Task<ITenantGrain> CreateTenantAsync() => _cluster.CreateTenantAsync();

    private static InstanceCommand NewInstance(string name) => GrainCluster.NewInstance(name);

    private IInstanceGrain Instance(string instanceId) => _cluster.Instance(instanceId);

    private Task<OperationRecord> WaitForOperationAsync(OperationRecord operation) => _cluster.WaitForOperationAsync(operation);

    private async Task<long> CountRemindersAsync(string instanceId)
    {
        var database = _cluster.Database;
        await using var connection = await database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM reminders WHERE grain_id LIKE @id;";
        // The instance grain's own reminder ("instance/<id>"), not billing's metering grain's ("instancemetering/<id>").
        Database.AddParameter(command, "id", $"%instance/{instanceId}");
        return (long)(await command.ExecuteScalarAsync())!;
    }
}
