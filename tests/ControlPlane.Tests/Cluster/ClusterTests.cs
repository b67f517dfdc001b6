using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using ControlPlane.Persistence;
using ControlPlane.Security;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.Caching.Memory;
using Npgsql;
using TestServers;
using Xunit.Abstractions;

namespace ControlPlane.Tests.Cluster;

/// <summary>
/// Cluster mode as it runs in production: three silo processes of the real host, one Orleans cluster over a real
/// PostgreSQL, each with its own data directory and API. The silo that provisioned a hosted instance is killed
/// with SIGKILL under load.
/// </summary>
public sealed class ClusterTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int SiloCount = 3;
    private static readonly TimeSpan s_requestTimeout = TimeSpan.FromSeconds(15);

    private readonly TestDirectory[] _directories = [.. Enumerable.Range(0, SiloCount).Select(_ => new TestDirectory())];

    // One machine: the silos share the Local backend's instances directory, so whichever silo an instance's grain
    // lives on finds (and adopts) its process.
    private readonly TestDirectory _instances = new();
    private readonly string _clusterId = $"test-{Guid.NewGuid():N}"[..20];
    private ControlPlaneProcess[] _silos = [];
    private string _connectionString = "";

    // Every silo reads the keys that seal instance passwords from one Dapr secret store, as in production.
    private FakeDapr.FakeDaprSidecar _secrets = null!;

    public async Task InitializeAsync()
    {
        _connectionString = await PostgresServer.CreateDatabaseAsync("cluster");
        _secrets = await FakeDapr.FakeDaprSidecar.StartAsync(
            new FakeDapr.FakePubSub(), "controlplane", appAddress: null,
            secretStores: new Dictionary<string, IReadOnlyDictionary<string, string>>
            {
                ["secretstore"] = new Dictionary<string, string> { ["instance-secret-keys"] = ControlPlane.Secrets.SecretKeySet.CreateNew().Format() },
            });
        _silos = [.. Enumerable.Range(0, SiloCount).Select(i => new ControlPlaneProcess(_directories[i].Path, Ports.InstanceRange(), new Dictionary<string, string>
        {
            ["ControlPlane:Mode"] = "Cluster",
            ["ConnectionStrings:ControlPlane"] = _connectionString,
            ["Orleans:ClusterId"] = _clusterId,
            ["Orleans:AdvertisedIPAddress"] = "127.0.0.1",
            ["Provisioner:Local:InstancesDirectory"] = _instances.Path,
            ["Secrets:SecretStore"] = "secretstore",
            ["Secrets:GrpcEndpoint"] = _secrets.GrpcEndpoint,
            // Declares a silo that stopped answering dead within seconds instead of about a minute, so the test is short;
            // not so tight that a silo slowed down by a loaded machine is taken for dead.
            ["Orleans:Membership:ProbeTimeout"] = "00:00:02",
            ["Orleans:Membership:NumMissedProbesLimit"] = "2",
            ["Orleans:Membership:TableRefreshTimeout"] = "00:00:02",
            ["Orleans:Membership:IAmAliveTablePublishTimeout"] = "00:00:05",
            ["Orleans:Messaging:ResponseTimeout"] = "00:00:05",
        }))];

        // All at once, as pods of a deployment start: the schema, the admin key and the cluster form once.
        await Task.WhenAll(_silos.Select(silo => silo.StartAsync()));
    }

    public async Task DisposeAsync()
    {
        foreach (var silo in _silos)
        {
            await silo.DisposeAsync();
        }

        foreach (var directory in _directories)
        {
            directory.Dispose();
        }

        _instances.Dispose();
        await _secrets.DisposeAsync();
    }

    [Fact]
    public async Task Silos_share_state_and_keys_and_losing_one_under_load_loses_no_acknowledged_write_and_no_instance()
    {
        // One admin key for the cluster, written by the silo that created it.
        var keyFiles = _directories.Select(d => Path.Combine(d.Path, AdminApiKeyBootstrapper.FileName)).Where(File.Exists).ToArray();
        var adminKey = File.ReadAllText(Assert.Single(keyFiles)).Trim();
        Assert.Equal(1L, await ScalarAsync("SELECT count(*) FROM api_keys WHERE role = 'platform-admin' AND revoked_at IS NULL"));
        Assert.Equal(3L, await ScalarAsync($"SELECT count(*) FROM OrleansMembershipTable WHERE DeploymentId = '{_clusterId}' AND Status = 3"));
        var apis = _silos.Select(silo => silo.CreateApi(adminKey, s_requestTimeout)).ToArray();

        // A write through one silo's API is read through every other's.
        var tenant = await apis[0].CreateTenantAsync("Shared Ltd", "team");
        foreach (var api in apis)
        {
            Assert.Equal(tenant.ToJsonString(), (await api.GetAsync($"/api/v1/tenants/{tenant["id"]}")).ToJsonString());
        }

        await AssertKeyCreatedAndRevokedByAnyoneHoldsOnEverySiloAsync();

        // A hosted instance, whose grain (and so its provisioning) lives on one silo: that silo is the one killed.
        var instance = await apis[0].CreateRunningInstanceAsync((string)tenant["id"]!, "survivor");
        var instanceId = (string)instance["id"]!;
        var credentials = await apis[0].GetCredentialsAsync((string)tenant["id"]!, instanceId);
        await using (var connection = await GarnetClient.ConnectAsync(credentials))
        {
            await connection.GetDatabase().StringSetAsync("written-before", "the kill");
        }

        // PostgreSQL holds the instance's password sealed, never in plaintext: a dump of the whole database shows none.
        var dump = await PostgresDumpAsync();
        Assert.Contains("env1.", dump, StringComparison.Ordinal);
        Assert.DoesNotContain((string)credentials["password"]!, dump, StringComparison.Ordinal);
        Assert.Contains(_secrets.Calls, call => call.EndsWith("GetSecret", StringComparison.Ordinal));

        var instanceProcess = Assert.Single(HostedProcesses.Under(Path.Combine(_instances.Path, instanceId)));
        var victim = Array.FindIndex(_silos, silo => silo.Output.Any(line => line.Contains($"for instance {instanceId} as process", StringComparison.Ordinal)));
        Assert.True(victim >= 0, "No silo says it started the instance.");
        var survivors = Enumerable.Range(0, SiloCount).Where(i => i != victim).Select(i => apis[i]).ToArray();

        // A client keeps creating tenants (each with its own Idempotency-Key, retried until acknowledged) and reading
        // acknowledged ones back, through whichever silos are in rotation; silo 0 is taken out and killed meanwhile.
        var load = new LoadingClient(apis);
        using var stop = new CancellationTokenSource();
        var running = load.RunAsync(workers: 4, stop.Token);
        await WaitForAsync(() => load.Acknowledged.Count >= 10, TimeSpan.FromSeconds(60), "10 writes before the kill");

        load.TakeOutOfRotation(victim);
        await _silos[victim].KillAsync();
        var killedAt = Stopwatch.StartNew();
        var acknowledgedAtKill = load.Acknowledged.Count;
        await WaitForAsync(
            async () => await ScalarAsync($"SELECT count(*) FROM OrleansMembershipTable WHERE DeploymentId = '{_clusterId}' AND Status = 6") is 1L,
            TimeSpan.FromSeconds(60),
            "the killed silo to be declared dead");
        Assert.Equal(2L, await ScalarAsync($"SELECT count(*) FROM OrleansMembershipTable WHERE DeploymentId = '{_clusterId}' AND Status = 3"));
        var settledAfter = killedAt.Elapsed;

        // After membership settles the survivors keep answering writes and reads.
        var acknowledgedAtSettle = load.Acknowledged.Count;
        await WaitForAsync(() => load.Acknowledged.Count >= acknowledgedAtSettle + 10, TimeSpan.FromSeconds(60), "10 writes after the cluster settled");
        await stop.CancelAsync();
        await running;

        Assert.True(load.Acknowledged.Count > acknowledgedAtKill, "No write was acknowledged after the kill.");
        Assert.True(load.SuccessfulReads > 0, "No read succeeded.");

        // Every acknowledged write is readable through every surviving silo, and the directory lists each once.
        foreach (var api in survivors)
        {
            foreach (var (id, name) in load.Acknowledged)
            {
                var read = await api.GetAsync($"/api/v1/tenants/{id}");
                Assert.Equal(name, (string?)read["name"]);
            }

            var listed = (await api.ListAllAsync("/api/v1/tenants?pageSize=100")).Select(t => (string)t["id"]!).ToList();
            Assert.Equal(listed.Count, listed.Distinct().Count());
            Assert.Subset(listed.ToHashSet(), load.Acknowledged.Keys.ToHashSet());
        }

        // A write whose answer was lost is retried with its key: it yields its one tenant, never a second.
        foreach (var (key, name) in load.Unacknowledged)
        {
            using var retry = await survivors[0].SendAsync(HttpMethod.Post, "/api/v1/tenants", new { name, plan = "developer" }, key);
            var created = await ControlPlaneApi.ExpectAsync(retry, HttpStatusCode.Created);
            Assert.Equal(name, (string?)created["name"]);
        }

        output.WriteLine(
            $"acknowledged {load.Acknowledged.Count} creates ({acknowledgedAtKill} before the kill), {load.SuccessfulReads} reads, {load.Failures} failed requests; " +
            $"{load.Unacknowledged.Count} unanswered, retried; killed silo declared dead after {settledAfter.TotalSeconds:0.0} s");
        var all = (await survivors[1].GetAsync("/api/v1/tenants"))["items"]!.AsArray().Select(t => (string)t!["name"]!).ToList();
        Assert.Equal(all.Count, all.Distinct().Count());
        Assert.True(settledAfter < TimeSpan.FromSeconds(60), $"Membership settled after {settledAfter}.");

        // The instance's grain came back on a survivor, adopted the same process (no second one), and serves its data.
        var adopted = await survivors[0].WaitForInstanceAsync(
            (string)tenant["id"]!, instanceId, i => (string?)i["state"] == "Running" && (string?)i["health"] == "healthy", TimeSpan.FromSeconds(60));
        Assert.Equal(instance["endpoint"]!.ToJsonString(), adopted["endpoint"]!.ToJsonString());
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Equal(instanceProcess, Assert.Single(HostedProcesses.Under(Path.Combine(_instances.Path, instanceId))));
        Assert.Equal("the kill", await GarnetClient.GetWhenServingAsync(credentials, "written-before", TimeSpan.FromSeconds(10)));
    }

    /// <summary>The whole database as <c>pg_dump</c> writes it (what a backup holds).</summary>
    private async Task<string> PostgresDumpAsync()
    {
        var target = new NpgsqlConnectionStringBuilder(_connectionString);
        var dump = new ProcessStartInfo("/usr/lib/postgresql/15/bin/pg_dump")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["PGPASSWORD"] = target.Password ?? "" },
            ArgumentList = { "-h", target.Host!, "-p", target.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-U", target.Username!, target.Database! },
        };
        using var process = Process.Start(dump)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"pg_dump failed: {await errors}");
        return await output;
    }

    /// <summary>A key made (and then revoked) by another silo works (then fails) here, revocation within seconds.</summary>
    private async Task AssertKeyCreatedAndRevokedByAnyoneHoldsOnEverySiloAsync()
    {
        using var cache = new MemoryCache(new MemoryCacheOptions());
        var database = Database.Postgres(_connectionString);
        using var keys = new ApiKeyStore(database, TimeProvider.System, cache);
        var (key, secret) = await keys.CreateAsync("ci on another silo", Roles.PlatformAdmin, tenantId: null);
        var apis = _silos.Select(silo => silo.CreateApi(secret, s_requestTimeout)).ToArray();
        foreach (var api in apis)
        {
            // Twice: the second is answered from the silo's cache, which the revocation must reach.
            await api.GetAsync("/api/v1/tenants");
            await api.GetAsync("/api/v1/tenants");
        }

        await keys.RevokeAsync(key.Id);
        var revokedAt = Stopwatch.StartNew();
        foreach (var api in apis)
        {
            await WaitForAsync(
                async () =>
                {
                    using var response = await api.Http.GetAsync("/api/v1/tenants");
                    return response.StatusCode == HttpStatusCode.Unauthorized;
                },
                TimeSpan.FromSeconds(10),
                "the revoked key to be refused");
        }

        // Well inside the 30 s a cached key could otherwise live.
        Assert.True(revokedAt.Elapsed < TimeSpan.FromSeconds(10), $"Revocation took {revokedAt.Elapsed} to reach every silo.");
        output.WriteLine($"a key revoked elsewhere was refused by all {apis.Length} silos after {revokedAt.Elapsed.TotalMilliseconds:0} ms");
    }

    private async Task<object?> ScalarAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    private static Task WaitForAsync(Func<bool> condition, TimeSpan timeout, string what) =>
        WaitForAsync(() => Task.FromResult(condition()), timeout, what);

    private static async Task WaitForAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"Timed out waiting for {what}.");
            await Task.Delay(100);
        }
    }

    /// <summary>Creates tenants and reads them back, round-robin over the silos in rotation; counts what was acknowledged.</summary>
    private sealed class LoadingClient(ControlPlaneApi[] apis)
    {
        private readonly ConcurrentDictionary<int, bool> _outOfRotation = new();
        private readonly ConcurrentDictionary<string, string> _pending = new();
        private int _next;
        private int _reads;
        private int _failures;

        /// <summary>Tenant id → name of every create answered 201.</summary>
        public ConcurrentDictionary<string, string> Acknowledged { get; } = new();

        /// <summary>Idempotency key → name of creates not (yet) answered 201.</summary>
        public ConcurrentDictionary<string, string> Unacknowledged => _pending;

        public int SuccessfulReads => _reads;

        /// <summary>Requests answered with an error, or not at all (e.g. while the killed silo was being declared dead).</summary>
        public int Failures => _failures;

        public void TakeOutOfRotation(int silo) => _outOfRotation[silo] = true;

        /// <summary>Runs <paramref name="workers"/> clients at once, so creates are in flight whenever a silo dies.</summary>
        public Task RunAsync(int workers, CancellationToken stop) =>
            Task.WhenAll(Enumerable.Range(0, workers).Select(worker => Task.Run(() => RunWorkerAsync(worker, stop), CancellationToken.None)));

        private async Task RunWorkerAsync(int worker, CancellationToken stop)
        {
            var random = new Random(worker);
            var sequence = 0;
            (string Key, string Name)? current = null;

            // Requests in flight are not cancelled when the test stops the load: each one's answer is either recorded or
            // leaves its create pending.
            while (!stop.IsCancellationRequested)
            {
                // A create that was not acknowledged is sent again, with its key, before anything new.
                current ??= ($"load-{worker}-{sequence}-{Guid.NewGuid():N}", $"Load {worker}-{sequence++}");
                var (key, name) = current.Value;
                _pending[key] = name;
                try
                {
                    using var response = await NextApi().SendAsync(HttpMethod.Post, "/api/v1/tenants", new { name, plan = "developer" }, key);
                    if (response.StatusCode == HttpStatusCode.Created)
                    {
                        var created = JsonNode.Parse(await response.Content.ReadAsStringAsync(CancellationToken.None))!;
                        Acknowledged[(string)created["id"]!] = name;
                        _pending.TryRemove(key, out _);
                        current = null;
                    }
                    else
                    {
                        Interlocked.Increment(ref _failures);
                    }

                    if (!Acknowledged.IsEmpty)
                    {
                        var id = Acknowledged.Keys.ElementAt(random.Next(Acknowledged.Count));
                        using var read = await NextApi().Http.GetAsync($"/api/v1/tenants/{id}", CancellationToken.None);
                        Interlocked.Increment(ref read.IsSuccessStatusCode ? ref _reads : ref _failures);
                    }
                }
                catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException)
                {
                    // Not acknowledged: the create stays pending and is retried with the same key.
                    Interlocked.Increment(ref _failures);
                }
            }
        }

        private ControlPlaneApi NextApi()
        {
            while (true)
            {
                var index = Interlocked.Increment(ref _next) % apis.Length;
                if (!_outOfRotation.ContainsKey(index))
                {
                    return apis[index];
                }
            }
        }
    }
}
