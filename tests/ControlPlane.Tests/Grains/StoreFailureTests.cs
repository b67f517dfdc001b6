using ControlPlane.Api;
using ControlPlane.Instances;
using ControlPlane.Operations;
using ControlPlane.Persistence;
using ControlPlane.Tenants;
using ControlPlane.Tests.Support;
using TestServers;

namespace ControlPlane.Tests.Grains;

/// <summary>
/// A write the store refuses changes nothing and sends nothing, at each point the tenant and instance grains write:
/// SQLite locked by another connection, a full file system, PostgreSQL stopped mid-operation. Each test then shows the
/// same work succeeding once the store is back, with one process per instance.
/// </summary>
public sealed class StoreFailureTests
{
    private static readonly Dictionary<string, string?> s_settings = new()
    {
        ["ControlPlane:Database:BusyTimeout"] = "00:00:00.300",
        ["Reconcile:Interval"] = "00:00:00.500",
        ["Reconcile:StallTimeout"] = "00:00:03",
    };

    [Fact]
    public async Task Sqlite_locked_by_another_connection_refuses_a_create_and_a_stop_and_nothing_is_changed_or_sent_until_it_is_released()
    {
        await using var cluster = await GrainCluster.StartAsync(s_settings);
        var tenant = await cluster.CreateTenantAsync();
        var key = new IdempotencyKey { Key = "create-1", Fingerprint = "request-a" };

        using (await SqliteWriteLock.TakeAsync(cluster.DatabaseFile))
        {
            await Assert.ThrowsAsync<StoreUnavailableException>(() => tenant.ExecuteAsync(GrainCluster.NewInstance("locked") with { Idempotency = key }));
        }

        Assert.Empty(cluster.Commands.Sent);
        Assert.Empty((await tenant.ListInstancesAsync(includeDeleted: true, PageRequest.First())).Items);

        var create = await cluster.WaitForOperationAsync(await tenant.ExecuteAsync(GrainCluster.NewInstance("locked") with { Idempotency = key }));
        Assert.Equal(OperationStatus.Succeeded, create.Status);
        var instance = cluster.Instance(create.InstanceId);
        var sentForOperations = cluster.Commands.ForOperations(create.InstanceId).Count;

        using (await SqliteWriteLock.TakeAsync(cluster.DatabaseFile))
        {
            await Assert.ThrowsAsync<StoreUnavailableException>(() => tenant.ExecuteAsync(GrainCluster.Verb(create.InstanceId, OperationType.Stop)));

            var during = await instance.GetAsync();
            Assert.Equal(InstanceLifecycle.Running, during!.State);
            Assert.Null(during.ActiveOperationId);
            Assert.Equal(create.Id, during.LastOperationId);
        }

        Assert.Equal(sentForOperations, cluster.Commands.ForOperations(create.InstanceId).Count);
        Assert.Single((await instance.ListOperationsAsync(PageRequest.First())).Items);
        Assert.Single(HostedProcesses.Under(cluster.InstanceDirectory(create.InstanceId)));

        var stop = await cluster.WaitForOperationAsync(await tenant.ExecuteAsync(GrainCluster.Verb(create.InstanceId, OperationType.Stop)));
        Assert.Equal(OperationStatus.Succeeded, stop.Status);
        Assert.Equal(InstanceLifecycle.Stopped, (await instance.GetAsync())!.State);
        Assert.Empty(HostedProcesses.Under(cluster.InstanceDirectory(create.InstanceId)));
    }

    [Fact]
    public async Task An_outcome_the_locked_store_refuses_leaves_the_operation_running_and_it_finishes_once_the_lock_is_released()
    {
        await using var cluster = await GrainCluster.StartAsync(s_settings);
        var tenant = await cluster.CreateTenantAsync();
        var create = await cluster.WaitForOperationAsync(await tenant.ExecuteAsync(GrainCluster.NewInstance("outcome")));
        var instance = cluster.Instance(create.InstanceId);
        await cluster.WaitForOperationAsync(await tenant.ExecuteAsync(GrainCluster.Verb(create.InstanceId, OperationType.Stop)));

        var start = await tenant.ExecuteAsync(GrainCluster.Verb(create.InstanceId, OperationType.Start));
        using (await SqliteWriteLock.TakeAsync(cluster.DatabaseFile))
        {
            // The provisioner does the work and reports it; the grain cannot store the outcome, so it does not believe it.
            var credentials = await instance.GetCredentialsAsync();
            await WaitUntilAsync(() => Accepts(credentials.Port), "the process to serve");
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            Assert.Single(HostedProcesses.Under(cluster.InstanceDirectory(create.InstanceId)));

            Assert.Equal(OperationStatus.Running, (await instance.GetOperationAsync(start.Id))!.Status);
            Assert.Equal(InstanceLifecycle.Starting, (await instance.GetAsync())!.State);
        }

        var finished = await cluster.WaitForOperationAsync(start, seconds: 30);

        Assert.Equal(OperationStatus.Succeeded, finished.Status);
        Assert.Equal(InstanceLifecycle.Running, (await instance.GetAsync())!.State);
        Assert.Contains(finished.Log, line => line.Message.Contains("sent the command again", StringComparison.Ordinal));
        Assert.Single(HostedProcesses.Under(cluster.InstanceDirectory(create.InstanceId)));
    }

    [Fact]
    public async Task A_full_file_system_refuses_a_stop_and_changes_nothing_until_space_is_freed()
    {
        // The store is under test, not instances' isolation: an isolated instance's own disk image would take most of
        // this small file system before the database could fill it.
        var settings = new Dictionary<string, string?>(s_settings) { ["Provisioner:Local:Isolation"] = "Off" };
        await using var cluster = await GrainCluster.StartAsync(settings, directory: TestDirectory.OnOwnFileSystem(megabytes: 96));
        var tenant = await cluster.CreateTenantAsync();
        var create = await cluster.WaitForOperationAsync(await tenant.ExecuteAsync(GrainCluster.NewInstance("full")));
        var instance = cluster.Instance(create.InstanceId);
        var sentForOperations = cluster.Commands.ForOperations(create.InstanceId).Count;

        // Fold the write-ahead log into the file first: a write must then grow a file, which a full disk refuses.
        await using (var connection = await cluster.Database.OpenAsync())
        {
            await using var checkpoint = connection.CreateCommand();
            checkpoint.CommandText = "PRAGMA wal_checkpoint(TRUNCATE);";
            await checkpoint.ExecuteNonQueryAsync();
        }

        var filler = cluster.DataDirectory.Fill();
        await Assert.ThrowsAsync<StoreUnavailableException>(() => tenant.ExecuteAsync(GrainCluster.Verb(create.InstanceId, OperationType.Stop)));

        var during = await instance.GetAsync();
        Assert.Equal(InstanceLifecycle.Running, during!.State);
        Assert.Null(during.ActiveOperationId);
        Assert.Equal(sentForOperations, cluster.Commands.ForOperations(create.InstanceId).Count);

        File.Delete(filler);
        var stop = await cluster.WaitForOperationAsync(await tenant.ExecuteAsync(GrainCluster.Verb(create.InstanceId, OperationType.Stop)));
        Assert.Equal(OperationStatus.Succeeded, stop.Status);
        Assert.Equal(2, (await instance.ListOperationsAsync(PageRequest.First())).Items.Count);
    }

    [Fact]
    public async Task PostgreSQL_stopped_mid_operation_refuses_writes_and_the_operation_finishes_after_it_returns()
    {
        using var postgres = ThrowawayPostgres.Start();
        await using var cluster = await GrainCluster.StartAsync(s_settings, postgres.ConnectionString);
        var tenant = await cluster.CreateTenantAsync();
        var create = await cluster.WaitForOperationAsync(await tenant.ExecuteAsync(GrainCluster.NewInstance("pg-down")));
        var instance = cluster.Instance(create.InstanceId);

        await cluster.WaitForOperationAsync(await tenant.ExecuteAsync(GrainCluster.Verb(create.InstanceId, OperationType.Stop)));
        var credentials = await instance.GetCredentialsAsync();

        var start = await tenant.ExecuteAsync(GrainCluster.Verb(create.InstanceId, OperationType.Start));
        postgres.Halt();
        try
        {
            await WaitUntilAsync(() => Accepts(credentials.Port), "the process to serve");
            await Task.Delay(TimeSpan.FromSeconds(1.5));

            Assert.Equal(OperationStatus.Running, (await instance.GetOperationAsync(start.Id))!.Status);
            Assert.Equal(InstanceLifecycle.Starting, (await instance.GetAsync())!.State);
            var instancesBefore = cluster.Commands.Sent.Select(command => command.InstanceId).Distinct().Count();
            await Assert.ThrowsAsync<StoreUnavailableException>(() => tenant.ExecuteAsync(GrainCluster.NewInstance("while-down")));
            Assert.Equal(instancesBefore, cluster.Commands.Sent.Select(command => command.InstanceId).Distinct().Count());
        }
        finally
        {
            postgres.Resume();
        }

        var finished = await cluster.WaitForOperationAsync(start, seconds: 30);

        Assert.Equal(OperationStatus.Succeeded, finished.Status);
        Assert.Equal(InstanceLifecycle.Running, (await instance.GetAsync())!.State);
        Assert.Contains(finished.Log, line => line.Message.Contains("sent the command again", StringComparison.Ordinal));
        Assert.Single(HostedProcesses.Under(cluster.InstanceDirectory(create.InstanceId)));
        Assert.Single((await tenant.ListInstancesAsync(includeDeleted: true, PageRequest.First())).Items);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"Timed out waiting for {what}.");
            await Task.Delay(50);
        }
    }

    private static bool Accepts(int port)
    {
        try
        {
            using var client = new System.Net.Sockets.TcpClient();
            client.Connect(System.Net.IPAddress.Loopback, port);
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }
}
