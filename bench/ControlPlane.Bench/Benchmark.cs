namespace ControlPlane.Bench;

internal sealed record BenchOptions(int Count, int Warmup, string Size, TimeSpan PollInterval);

/// <summary>The bare-process baseline and the control plane's creates (embedded, and over Dapr), measured in the same run.</summary>
internal sealed record SequentialResult(
    IReadOnlyList<BareStart> Baseline, IReadOnlyList<CreateTiming> ControlPlane, IReadOnlyList<CreateTiming> Dapr, TimeSpan MedianPollRoundTrip);

/// <summary>
/// One run: start the embedded control plane and the Dapr path (control plane and Provisioner app over fake sidecars),
/// measure the three paths interleaved, then creates in parallel on each; clean up whatever happens.
/// </summary>
internal static class Benchmark
{
    private static readonly TimeSpan s_deleteTimeout = TimeSpan.FromSeconds(60);

    public static async Task<int> RunAsync(BenchOptions options, CancellationToken cancellationToken)
    {
        var workDirectory = Path.Combine(Path.GetTempPath(), "cp-bench", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(workDirectory);
        ControlPlaneHost? host = null;
        DaprPath? dapr = null;
        try
        {
            var controlPlane = ControlPlaneHost.LocateBuild();
            var template = GarnetLaunchTemplate.Load(Path.GetDirectoryName(controlPlane)!, options.Size);
            Console.WriteLine($"Control plane: {controlPlane}");
            Console.WriteLine($"Work directory: {workDirectory}");
            host = await ControlPlaneHost.StartAsync(controlPlane, workDirectory, cancellationToken);
            Console.WriteLine($"Control plane ready on {host.BaseAddress}");
            dapr = await DaprPath.StartAsync(controlPlane, workDirectory, cancellationToken);
            Console.WriteLine($"Dapr path ready: control plane on {dapr.Host.BaseAddress}, Provisioner app beside it, fake sidecars between");

            using var api = new ControlPlaneClient(host.BaseAddress, host.AdminApiKey);
            using var daprApi = new ControlPlaneClient(dapr.Host.BaseAddress, dapr.Host.AdminApiKey);
            var creates = new InstanceCreates(api, host, options.Size, options.PollInterval);
            var daprCreates = new InstanceCreates(daprApi, dapr.Host, options.Size, options.PollInterval);
            var baseline = new BareGarnet(template, workDirectory, options.PollInterval);
            var sequential = await MeasureSequentialAsync(
                options, baseline, new CreatePath(api, creates), new CreatePath(daprApi, daprCreates), cancellationToken);

            // The same load by hand first: how long the machine takes to bring up that many Garnets at once.
            Console.WriteLine($"{options.Count} bare Garnets at once…");
            var concurrentBaseline = await baseline.MeasureConcurrentStartsAsync(options.Count, cancellationToken);
            Console.WriteLine($"{options.Count} creates at once (fresh tenant)…");
            var tenantId = await api.CreateTenantAsync("Benchmark concurrent", "enterprise", cancellationToken);
            var names = Enumerable.Range(1, options.Count).Select(index => $"bench-c-{index}").ToList();
            var concurrent = await creates.CreateAllAtOnceAsync(tenantId, names, cancellationToken);
            await Task.WhenAll(concurrent.Creates.Select(create => api.DeleteInstanceAsync(tenantId, create.InstanceId, s_deleteTimeout, cancellationToken)));
            Console.WriteLine($"{options.Count} creates at once over Dapr (fresh tenant)…");
            var daprTenantId = await daprApi.CreateTenantAsync("Benchmark concurrent", "enterprise", cancellationToken);
            var daprConcurrent = await daprCreates.CreateAllAtOnceAsync(daprTenantId, names, cancellationToken);
            await Task.WhenAll(daprConcurrent.Creates.Select(create => daprApi.DeleteInstanceAsync(daprTenantId, create.InstanceId, s_deleteTimeout, cancellationToken)));

            Report.Print(options, template.Version, sequential, concurrentBaseline, concurrent, daprConcurrent);
            return 0;
        }
        catch (BenchmarkFailedException failure)
        {
            await Console.Error.WriteLineAsync($"Benchmark failed: {failure.Message}");
            foreach (var log in new[] { host?.LogFile, dapr?.Host?.LogFile, dapr?.ProvisionerLogFile })
            {
                if (log is not null && File.Exists(log))
                {
                    await Console.Error.WriteLineAsync($"Last lines of {log}:\n{string.Join('\n', File.ReadLines(log).TakeLast(20))}");
                }
            }

            return 1;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync("Interrupted.");
            return 130;
        }
        finally
        {
            // Instances run in sessions of their own and outlive the control plane: whatever the API did not
            // delete is found by the work directory on its command line.
            if (host is not null)
            {
                await host.DisposeAsync();
            }

            if (dapr is not null)
            {
                await dapr.DisposeAsync();
            }

            DetachedProcesses.KillUnder(workDirectory);
            Directory.Delete(workDirectory, recursive: true);
            Console.WriteLine($"Cleaned up {workDirectory}");
        }
    }

    private static async Task<SequentialResult> MeasureSequentialAsync(
        BenchOptions options, BareGarnet baseline, CreatePath embedded, CreatePath dapr, CancellationToken cancellationToken)
    {
        Console.WriteLine($"{options.Warmup} warm-up rounds, then {options.Count} rounds (bare Garnet, embedded control plane, Dapr path; interleaved)…");
        var embeddedTenant = await embedded.Api.CreateTenantAsync("Benchmark sequential", "enterprise", cancellationToken);
        var daprTenant = await dapr.Api.CreateTenantAsync("Benchmark sequential", "enterprise", cancellationToken);
        var bare = new List<BareStart>();
        var created = new List<CreateTiming>();
        var overDapr = new List<CreateTiming>();
        for (var round = 1; round <= options.Warmup + options.Count; round++)
        {
            // Interleaved, the order rotating from round to round: each round measures all three paths back to back,
            // so a burst of load from another build on this shared machine hits them alike, and no path always goes
            // first. Each instance is deleted before the next measurement, as each bare Garnet is killed, so every
            // path starts on a machine without other instances. Warm-up rounds (JIT, first use of grains, SQLite,
            // gRPC channels and the page cache) are dropped.
            BareStart? bareStart = null;
            CreateTiming? create = null;
            CreateTiming? daprCreate = null;
            for (var turn = 0; turn < 3; turn++)
            {
                switch ((round + turn) % 3)
                {
                    case 0:
                        bareStart = await baseline.MeasureStartAsync(cancellationToken);
                        break;
                    case 1:
                        create = await embedded.CreateThenDeleteAsync(embeddedTenant, $"bench-{round}", cancellationToken);
                        break;
                    default:
                        daprCreate = await dapr.CreateThenDeleteAsync(daprTenant, $"bench-{round}", cancellationToken);
                        break;
                }
            }

            var line = $"baseline {Report.Ms(bareStart!.ToPong)}, embedded {Report.Ms(create!.ToRunning)}, dapr {Report.Ms(daprCreate!.ToRunning)}";
            if (round <= options.Warmup)
            {
                embedded.Creates.PollRoundTrips.Clear();
                Console.WriteLine($"  warm-up {round}/{options.Warmup}: {line}");
                continue;
            }

            bare.Add(bareStart);
            created.Add(create);
            overDapr.Add(daprCreate);
            Console.WriteLine($"  {round - options.Warmup,3}/{options.Count}: {line}");
        }

        return new SequentialResult(bare, created, overDapr, Statistics.Median(embedded.Creates.PollRoundTrips));
    }

    /// <summary>One control plane's creates: through its API, each instance deleted before the next measurement.</summary>
    private sealed record CreatePath(ControlPlaneClient Api, InstanceCreates Creates)
    {
        public async Task<CreateTiming> CreateThenDeleteAsync(string tenantId, string name, CancellationToken cancellationToken)
        {
            var create = await Creates.CreateAndWaitAsync(tenantId, name, cancellationToken);
            await Api.DeleteInstanceAsync(tenantId, create.InstanceId, s_deleteTimeout, cancellationToken);
            return create;
        }
    }
}
