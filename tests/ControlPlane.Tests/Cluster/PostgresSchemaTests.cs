using System.Net;
using ControlPlane.Persistence;
using ControlPlane.Security;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using Orleans.Configuration;
using Orleans.Runtime.MembershipService;
using Orleans.Storage;
using TestServers;

namespace ControlPlane.Tests.Cluster;

/// <summary>
/// Cluster mode's PostgreSQL schema on a real server, at the provider level: Orleans' own ADO.NET membership and
/// reminder providers over our stored queries, our grain storage with its ETags, and the shared API keys.
/// </summary>
public sealed class PostgresSchemaTests : IAsyncLifetime
{
    private const string ClusterId = "schema-test";
    private readonly TestDirectory _directory = new();
    private string _connectionString = "";
    private Database _database = null!;

    public async Task InitializeAsync()
    {
        _connectionString = await PostgresServer.CreateDatabaseAsync("schema");
        _database = Database.Postgres(_connectionString);
        await Migrations.ApplyAsync(_database, TestSchema.All);
    }

    public Task DisposeAsync()
    {
        _directory.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Migrations_are_applied_once_even_when_several_silos_start_together()
    {
        var fresh = Database.Postgres(await PostgresServer.CreateDatabaseAsync("schema"));
        var expected = TestSchema.All.Where(migration => migration.Postgres is not null).Select(migration => migration.Id).Order(StringComparer.Ordinal).ToList();

        var runs = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => Migrations.ApplyAsync(fresh, TestSchema.All))));

        Assert.Equal(expected, runs.Single(applied => applied.Count > 0));
        Assert.Equal(3, runs.Count(applied => applied.Count == 0));
        Assert.Empty(await Migrations.ApplyAsync(fresh, TestSchema.All));
        await using var connection = await fresh.OpenAsync();
        await using var count = connection.CreateCommand();
        count.CommandText = "SELECT count(*) FROM applied_migrations";
        Assert.Equal((long)expected.Count, await count.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Orleans_membership_provider_inserts_updates_and_refuses_stale_versions()
    {
        var table = new AdoNetClusteringTable(
            new ServiceCollection().BuildServiceProvider(),
            Options.Create(new ClusterOptions { ClusterId = ClusterId, ServiceId = "controlplane" }),
            Options.Create(new AdoNetClusteringSiloOptions { Invariant = "Npgsql", ConnectionString = _connectionString }),
            NullLogger<AdoNetClusteringTable>.Instance);
        await table.InitializeMembershipTableAsync(tryInitTableVersion: true);
        await table.InitializeMembershipTableAsync(tryInitTableVersion: true);

        var empty = await table.ReadAllAsync();
        Assert.Empty(empty.Members);
        var first = Entry(11111, SiloStatus.Joining);
        Assert.True(await table.InsertRowAsync(first, empty.Version.Next()));
        // The same version again: another silo already moved the table on.
        Assert.False(await table.InsertRowAsync(Entry(22222, SiloStatus.Joining), empty.Version.Next()));
        // The same row again with a current version: refused, and the version does not move.
        var afterInsert = await table.ReadAllAsync();
        Assert.False(await table.InsertRowAsync(first, afterInsert.Version.Next()));
        Assert.Equal(afterInsert.Version.Version, (await table.ReadAllAsync()).Version.Version);

        var (stored, etag) = Assert.Single(afterInsert.Members);
        Assert.Equal(first.SiloAddress, stored.SiloAddress);
        stored.Status = SiloStatus.Active;
        Assert.True(await table.UpdateRowAsync(stored, etag, afterInsert.Version.Next()));
        Assert.False(await table.UpdateRowAsync(stored, etag, afterInsert.Version.Next()));

        // A silo without a row cannot be updated, and the failed update leaves the version where it was.
        var current = await table.ReadAllAsync();
        Assert.False(await table.UpdateRowAsync(Entry(44444, SiloStatus.Active), etag, current.Version.Next()));
        Assert.Equal(current.Version.Version, (await table.ReadAllAsync()).Version.Version);

        var alive = DateTime.UtcNow.AddMinutes(1);
        stored.IAmAliveTime = alive;
        await table.UpdateIAmAliveAsync(stored);
        var row = await table.ReadRowAsync(first.SiloAddress);
        var (read, _) = Assert.Single(row.Members);
        Assert.Equal(SiloStatus.Active, read.Status);
        Assert.Equal(alive, read.IAmAliveTime, TimeSpan.FromMilliseconds(2));
        Assert.Equal(afterInsert.Version.Version + 1, row.Version.Version);

        // A heartbeat never moves backwards.
        stored.IAmAliveTime = alive.AddMinutes(-5);
        await table.UpdateIAmAliveAsync(stored);
        Assert.Equal(alive, (await table.ReadRowAsync(first.SiloAddress)).Members[0].Item1.IAmAliveTime, TimeSpan.FromMilliseconds(2));

        // Only dead silos' rows are pruned.
        var dead = Entry(33333, SiloStatus.Dead);
        dead.IAmAliveTime = DateTime.UtcNow.AddHours(-2);
        dead.StartTime = dead.IAmAliveTime;
        Assert.True(await table.InsertRowAsync(dead, (await table.ReadAllAsync()).Version.Next()));
        await table.CleanupDefunctSiloEntriesAsync(DateTimeOffset.UtcNow.AddHours(-1));
        var remaining = await table.ReadAllAsync();
        Assert.Equal([first.SiloAddress], remaining.Members.Select(m => m.Item1.SiloAddress));

        // Deleting the cluster removes its version row too; a silo starting afterwards begins a new table.
        await table.DeleteMembershipTableEntriesAsync(ClusterId);
        await table.InitializeMembershipTableAsync(tryInitTableVersion: true);
        var restarted = await table.ReadAllAsync();
        Assert.Empty(restarted.Members);
        Assert.Equal(0, restarted.Version.Version);
    }

    [Fact]
    public async Task Orleans_reminder_provider_round_trips_ranges_and_etags()
    {
        var services = new ServiceCollection();
        services.Configure<ClusterOptions>(cluster => cluster.ServiceId = "schema-test");
        services.UseAdoNetReminderService(options => options.Configure(reminders =>
        {
            reminders.Invariant = "Npgsql";
            reminders.ConnectionString = _connectionString;
        }));
        await using var provider = services.BuildServiceProvider();
        var reminders = provider.GetRequiredService<IReminderTable>();
        await reminders.StartAsync(CancellationToken.None);

        var grains = Enumerable.Range(0, 20).Select(i => GrainId.Create("instance", $"ins-{i}")).ToArray();
        var etags = new Dictionary<GrainId, string>();
        foreach (var grain in grains)
        {
            etags[grain] = (await reminders.UpsertRow(Reminder(grain, TimeSpan.FromMinutes(1))))!;
        }

        var read = await reminders.ReadRow(grains[0], "reconcile");
        Assert.NotNull(read);
        Assert.Equal(TimeSpan.FromMinutes(1), read.Period);
        Assert.Equal(etags[grains[0]], read.ETag);
        Assert.Single((await reminders.ReadRows(grains[0])).Reminders);

        // Every reminder is in exactly one of two ranges that split the ring, whichever way the split wraps.
        foreach (var split in new uint[] { 0x4000_0000, 0xC000_0000 })
        {
            var low = await reminders.ReadRows(split, 0x8000_0000 + split);
            var high = await reminders.ReadRows(0x8000_0000 + split, split);
            Assert.Equal(grains.Length, low.Reminders.Count + high.Reminders.Count);
            Assert.Equal(grains.OrderBy(g => g.ToString()), low.Reminders.Concat(high.Reminders).Select(r => r.GrainId).OrderBy(g => g.ToString()));
        }

        // An update changes the ETag; the old one can no longer delete it.
        var updated = await reminders.UpsertRow(Reminder(grains[0], TimeSpan.FromMinutes(2)));
        Assert.NotEqual(etags[grains[0]], updated);
        Assert.False(await reminders.RemoveRow(grains[0], "reconcile", etags[grains[0]]));
        Assert.True(await reminders.RemoveRow(grains[0], "reconcile", updated!));
        Assert.Null(await reminders.ReadRow(grains[0], "reconcile"));

        await reminders.TestOnlyClearTable();
        Assert.Empty((await reminders.ReadRows(0, 0)).Reminders);
    }

    [Fact]
    public async Task Grain_state_round_trips_as_json_and_a_stale_etag_is_refused()
    {
        var storage = new JsonGrainStorage(_database);
        var grain = GrainId.Create("tenant", "tnt-1");
        var writer = new GrainState<Sample> { State = new Sample("Acme", 3) };

        await storage.WriteStateAsync("tenant", grain, writer);
        Assert.Equal("1", writer.ETag);
        var racer = new GrainState<Sample> { State = new Sample("Other", 1) };
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("tenant", grain, racer));

        var reader = new GrainState<Sample>();
        await storage.ReadStateAsync("tenant", grain, reader);
        Assert.Equal(new Sample("Acme", 3), reader.State);
        Assert.True(reader.RecordExists);

        reader.State = reader.State! with { Instances = 4 };
        await storage.WriteStateAsync("tenant", grain, reader);
        Assert.Equal("2", reader.ETag);
        writer.State = writer.State! with { Instances = 99 };
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("tenant", grain, writer));
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.ClearStateAsync("tenant", grain, writer));

        await using (var connection = await _database.OpenAsync())
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT payload->>'Name', (payload->>'Instances')::int FROM grain_state WHERE grain_id = @id";
            Database.AddParameter(command, "id", grain.ToString());
            await using var row = await command.ExecuteReaderAsync();
            Assert.True(await row.ReadAsync());
            Assert.Equal("Acme", row.GetString(0));
            Assert.Equal(4, row.GetInt32(1));
        }

        await storage.ClearStateAsync("tenant", grain, reader);
        var cleared = new GrainState<Sample>();
        await storage.ReadStateAsync("tenant", grain, cleared);
        Assert.False(cleared.RecordExists);
    }

    [Fact]
    public async Task Silos_starting_together_create_one_admin_key_and_a_revocation_reaches_every_silo()
    {
        var silos = Enumerable.Range(0, 3).Select(_ => new ApiKeyStore(_database, TimeProvider.System, new MemoryCache(new MemoryCacheOptions()))).ToArray();
        var kept = new System.Collections.Concurrent.ConcurrentBag<string>();

        var created = await Task.WhenAll(silos.Select(silo => Task.Run(() => silo.CreateFirstAsync(
            "bootstrap", Roles.PlatformAdmin, (secret, _) => { kept.Add(secret); return Task.CompletedTask; }))));

        var key = Assert.Single(created.OfType<ApiKeyRecord>());
        var secret = Assert.Single(kept);
        Assert.Equal(1, await silos[0].CountActiveAsync(Roles.PlatformAdmin));

        // Every silo has the key cached; a revocation through one is seen by the others through the listener.
        using var listener = new ApiKeyRevocationListener(_database, silos[2], NullLogger<ApiKeyRevocationListener>.Instance);
        await listener.StartAsync(CancellationToken.None);
        foreach (var silo in silos)
        {
            Assert.Equal(key.Id, (await silo.FindAsync(secret))?.Id);
        }

        await Task.Delay(500);
        await silos[0].RevokeAsync(key.Id);

        Assert.Null(await silos[0].FindAsync(secret));
        await WaitUntilAsync(async () => await silos[2].FindAsync(secret) is null, "the revocation to reach the listening silo");

        // Without a listener, the cache bounds it: still accepted until its entry expires.
        Assert.NotNull(await silos[1].FindAsync(secret));

        // The listener's connection is cut (a database restart or failover): it reconnects, and the next revocation
        // still reaches it.
        await using (var connection = await _database.OpenAsync())
        await using (var terminate = connection.CreateCommand())
        {
            terminate.CommandText = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'";
            Assert.Equal(1L, await terminate.ExecuteScalarAsync());
        }

        var (second, secondSecret) = await silos[0].CreateAsync("ci", Roles.PlatformAdmin, tenantId: null);
        await WaitUntilAsync(async () => await ListenersAsync() == 1, "the listener to reconnect");
        Assert.NotNull(await silos[2].FindAsync(secondSecret));
        await silos[0].RevokeAsync(second.Id);
        await WaitUntilAsync(async () => await silos[2].FindAsync(secondSecret) is null, "the revocation after the reconnect");
        await listener.StopAsync(CancellationToken.None);
    }

    private async Task<long> ListenersAsync()
    {
        await using var connection = await _database.OpenAsync();
        await using var count = connection.CreateCommand();
        count.CommandText = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'";
        return (long)(await count.ExecuteScalarAsync())!;
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"Timed out after 10 s waiting for {what}.");
            await Task.Delay(50);
        }
    }

    private static MembershipEntry Entry(int port, SiloStatus status) => new()
    {
        SiloAddress = SiloAddress.New(IPAddress.Loopback, port, 1),
        SiloName = $"silo-{port}",
        HostName = "localhost",
        Status = status,
        ProxyPort = 0,
        StartTime = DateTime.UtcNow,
        IAmAliveTime = DateTime.UtcNow,
    };

    private static ReminderEntry Reminder(GrainId grain, TimeSpan period) => new()
    {
        GrainId = grain,
        ReminderName = "reconcile",
        StartAt = DateTime.UtcNow,
        Period = period,
    };

    public sealed record Sample(string Name, int Instances)
    {
        public Sample()
            : this("", 0)
        {
        }
    }
}
