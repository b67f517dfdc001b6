using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using TestServers;

namespace ControlPlane.Bench;

internal sealed record GrainReadOptions(TimeSpan Duration, int Rounds, int Concurrency, int Tenants);

/// <summary>One cluster's reads in one measured interval.</summary>
internal sealed record ReadRound(int Silos, long Reads, long Errors, TimeSpan Elapsed)
{
    public double PerSecond => Reads / Elapsed.TotalSeconds;
}

/// <summary>
/// Read throughput of a 1-silo and a 2-silo cluster (cluster mode, one real PostgreSQL), both running for the whole
/// run and measured in alternating rounds, so load from other work on this machine hits both alike. A read is
/// <c>GET /api/v1/tenants/{id}</c> spread over the cluster's APIs: two grain calls (the tenant check and the read),
/// on whichever silo each tenant's grain lives, behind HTTP and API-key authentication.
/// </summary>
internal static class GrainReadBenchmark
{
    public static async Task<int> RunAsync(GrainReadOptions options, CancellationToken cancellationToken)
    {
        var workDirectory = Path.Combine(Path.GetTempPath(), "cp-bench", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(workDirectory);
        var clusters = new List<BenchCluster>();
        try
        {
            var controlPlane = ControlPlaneHost.LocateBuild();
            Console.WriteLine($"Control plane: {controlPlane}");
            Console.WriteLine($"Work directory: {workDirectory}");
            Console.WriteLine($"PostgreSQL: {(Environment.GetEnvironmentVariable(PostgresServer.EnvironmentVariable) is { Length: > 0 } ? "from " + PostgresServer.EnvironmentVariable : "a throwaway server")}");
            foreach (var silos in new[] { 1, 2 })
            {
                clusters.Add(await BenchCluster.StartAsync(controlPlane, workDirectory, silos, options.Tenants, cancellationToken));
                Console.WriteLine($"{silos}-silo cluster ready: {string.Join(", ", clusters[^1].Silos.Select(s => s.BaseAddress))}");
            }

            Console.WriteLine($"Warm-up: {options.Duration.TotalSeconds:0} s each…");
            foreach (var cluster in clusters)
            {
                await cluster.ReadForAsync(options.Duration, options.Concurrency, cancellationToken);
            }

            var rounds = new List<ReadRound>();
            for (var round = 1; round <= options.Rounds; round++)
            {
                // Alternating which goes first keeps a slow drift of the machine's load from favouring either.
                foreach (var cluster in round % 2 == 1 ? clusters : Enumerable.Reverse(clusters))
                {
                    var measured = await cluster.ReadForAsync(options.Duration, options.Concurrency, cancellationToken);
                    rounds.Add(measured);
                    Console.WriteLine(Invariant($"  round {round}/{options.Rounds}: {measured.Silos} silo(s) {measured.PerSecond,8:0} reads/s ({measured.Errors} errors)"));
                }
            }

            Print(options, rounds);
            return rounds.Any(r => r.Errors > 0) ? 1 : 0;
        }
        catch (BenchmarkFailedException failure)
        {
            await Console.Error.WriteLineAsync($"Benchmark failed: {failure.Message}");
            return 1;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync("Interrupted.");
            return 130;
        }
        finally
        {
            foreach (var cluster in clusters)
            {
                await cluster.DisposeAsync();
            }

            DetachedProcesses.KillUnder(workDirectory);
            Directory.Delete(workDirectory, recursive: true);
            Console.WriteLine($"Cleaned up {workDirectory}");
        }
    }

    private static void Print(GrainReadOptions options, List<ReadRound> rounds)
    {
        double Median(int silos)
        {
            var sorted = rounds.Where(r => r.Silos == silos).Select(r => r.PerSecond).Order().ToArray();
            return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
        }

        var one = Median(1);
        var two = Median(2);
        Console.WriteLine();
        Console.WriteLine(Invariant(
            $"Tenant reads through the API (2 grain calls each), {options.Concurrency} concurrent clients, {options.Rounds} rounds of {options.Duration.TotalSeconds:0} s per cluster, interleaved, on {Environment.ProcessorCount} cores"));
        Console.WriteLine($"  {"",-28}{"median",12}{"min",12}{"max",12}{"errors",10}");
        foreach (var silos in new[] { 1, 2 })
        {
            var mine = rounds.Where(r => r.Silos == silos).ToList();
            Console.WriteLine(Invariant(
                $"  {(silos == 1 ? "1 silo" : "2 silos"),-28}{Median(silos),10:0}/s{mine.Min(r => r.PerSecond),10:0}/s{mine.Max(r => r.PerSecond),10:0}/s{mine.Sum(r => r.Errors),10}"));
        }

        Console.WriteLine(Invariant($"  {"ratio 2 silos / 1 silo",-28}{two / one,12:0.00}"));
        Console.WriteLine(Invariant($"grain-reads one-silo={one:0} two-silo={two:0} ratio={two / one:0.00} cores={Environment.ProcessorCount}"));
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>A cluster of control-plane silos in cluster mode over a database of its own, with tenants to read.</summary>
    private sealed class BenchCluster : IAsyncDisposable
    {
        private readonly List<HttpClient> _clients = [];
        private string[] _tenantIds = [];

        private BenchCluster(List<ControlPlaneHost> silos) => Silos = silos;

        public List<ControlPlaneHost> Silos { get; }

        public static async Task<BenchCluster> StartAsync(string controlPlane, string workDirectory, int silos, int tenants, CancellationToken cancellationToken)
        {
            var database = await PostgresServer.CreateDatabaseAsync("bench");
            var clusterId = $"bench-{silos}-{Guid.NewGuid():N}"[..24];
            // The silos share the keys that seal instance passwords: one key file, as a mounted secret would be.
            var keyFile = Path.Combine(workDirectory, $"{clusterId}-secret-keys");
            await File.WriteAllTextAsync(keyFile, $"v1:{Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32))}\n", cancellationToken);
            File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            var settings = new Dictionary<string, string>
            {
                ["ControlPlane:Mode"] = "Cluster",
                ["ConnectionStrings:ControlPlane"] = database,
                ["Orleans:ClusterId"] = clusterId,
                ["Orleans:AdvertisedIPAddress"] = "127.0.0.1",
                ["Secrets:KeyFile"] = keyFile,
                // Every request would otherwise write a log line or two; the benchmark measures reads, not logging.
                ["Logging:LogLevel:Default"] = "Warning",
            };
            var cluster = new BenchCluster([]);
            try
            {
                // One after the other: the first writes the cluster's admin key into its own data directory.
                for (var silo = 0; silo < silos; silo++)
                {
                    cluster.Silos.Add(await ControlPlaneHost.StartAsync(
                        controlPlane, workDirectory, cancellationToken, $"cluster{silos}-silo{silo}", settings: settings, requireAdminKey: silo == 0));
                }

                await cluster.CreateTenantsAsync(tenants, cancellationToken);
                return cluster;
            }
            catch
            {
                await cluster.DisposeAsync();
                throw;
            }
        }

        /// <summary>Reads random tenants for <paramref name="duration"/>, each client sticking to one silo's API, clients spread evenly.</summary>
        public async Task<ReadRound> ReadForAsync(TimeSpan duration, int concurrency, CancellationToken cancellationToken)
        {
            long reads = 0;
            long errors = 0;
            var started = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, concurrency).Select(client => Task.Run(
                async () =>
                {
                    var http = _clients[client % _clients.Count];
                    var random = new Random(client);
                    while (started.Elapsed < duration)
                    {
                        using var response = await http.GetAsync(new Uri($"/api/v1/tenants/{_tenantIds[random.Next(_tenantIds.Length)]}", UriKind.Relative), cancellationToken);
                        Interlocked.Increment(ref response.IsSuccessStatusCode ? ref reads : ref errors);
                    }
                },
                cancellationToken)));
            return new ReadRound(Silos.Count, reads, errors, started.Elapsed);
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var client in _clients)
            {
                client.Dispose();
            }

            foreach (var silo in Enumerable.Reverse(Silos))
            {
                await silo.DisposeAsync();
            }
        }

        private async Task CreateTenantsAsync(int tenants, CancellationToken cancellationToken)
        {
            foreach (var silo in Silos)
            {
                var http = new HttpClient(new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) })
                {
                    BaseAddress = silo.BaseAddress,
                    Timeout = TimeSpan.FromSeconds(30),
                };
                http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Silos[0].AdminApiKey);
                _clients.Add(http);
            }

            using var api = new ControlPlaneClient(Silos[0].BaseAddress, Silos[0].AdminApiKey);
            _tenantIds = await Task.WhenAll(Enumerable.Range(1, tenants).Select(i => api.CreateTenantAsync($"Bench reads {i}", "developer", cancellationToken)));
        }
    }
}
