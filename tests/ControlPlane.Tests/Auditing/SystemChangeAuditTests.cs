using ControlPlane.Auditing;
using ControlPlane.Instances;
using ControlPlane.Persistence;
using ControlPlane.Tests.Grains;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace ControlPlane.Tests.Auditing;

/// <summary>
/// The changes the control plane makes on its own are in the audit log as <c>system</c>: a repair of a killed instance,
/// the end of an operation a person started; and each once, also when a crash made the grain write them again.
/// </summary>
public sealed class SystemChangeAuditTests : IAsyncLifetime
{
    private GrainCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await GrainCluster.StartAsync();

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task A_repair_and_an_operations_end_are_audited_as_the_system_once_each_even_when_a_crash_writes_them_again()
    {
        var tenant = await _cluster.CreateTenantAsync();
        var create = await _cluster.WaitForOperationAsync(await tenant.ExecuteAsync(GrainCluster.NewInstance("repaired")));
        var instanceId = create.InstanceId;
        HostedProcesses.KillUnder(_cluster.InstanceDirectory(instanceId));
        await WaitForEventAsync(instanceId, "repaired");

        var records = await SystemRecordsAsync(instanceId);
        Assert.Equal(1, records.Count(record => record.Action == "instance.create.complete" && record.Outcome == "succeeded"));
        var repair = Assert.Single(records, record => record.Action == "instance.repair");
        Assert.Equal(tenant.GetPrimaryKeyString(), repair.TenantId);
        Assert.Contains("Repaired", repair.Details, StringComparison.Ordinal);
        Assert.Equal("Running", repair.After!.Value.GetProperty("lifecycle").GetString());
        Assert.Null(repair.ClientAddress);

        // A crash after the records were written, before the grain stored that it wrote them: its stored mark is behind
        // (rewound to the start here), so the next activation writes every one of them again.
        await _cluster.RestartAsync(whileStopped: () => RewindAuditMarkAsync(instanceId));
        Assert.Equal(InstanceLifecycle.Running, (await _cluster.Instance(instanceId).GetAsync())!.State);

        var again = await SystemRecordsAsync(instanceId);
        Assert.Equal(records.Select(record => record.Id), again.Select(record => record.Id));
        Assert.True((await _cluster.SiloServices.GetRequiredService<AuditVerifier>().VerifyAsync()).Intact);
    }

    private async Task<List<AuditRecord>> SystemRecordsAsync(string instanceId) =>
        [.. (await new AuditQueries(_cluster.Database).PageAsync(
            new AuditFilter { Actor = SystemChanges.Actor, Target = instanceId }, new ControlPlane.Api.PageRequest { Size = 100 })).Items.OrderBy(record => record.Id)];

    private async Task WaitForEventAsync(string instanceId, string kind)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (!(await _cluster.Instance(instanceId).ListEventsAsync(new ControlPlane.Api.PageRequest { Size = 100 })).Items.Any(e => e.Kind == kind))
        {
            Assert.True(DateTime.UtcNow < deadline, $"No {kind} event within 90 s.");
            await Task.Delay(250);
        }
    }

    private async Task RewindAuditMarkAsync(string instanceId)
    {
        await using var connection = await _cluster.Database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "UPDATE grain_state SET payload = json_set(payload, '$.AuditedEventSequence', 0) WHERE state_name = 'instance' AND grain_id LIKE @id";
        Database.AddParameter(command, "id", "%" + instanceId);
        Assert.Equal(1, await command.ExecuteNonQueryAsync());
    }
}
