namespace ControlPlane.Bench;

internal sealed record BenchOptions(int Count, int Warmup, string Size, TimeSpan PollInterval);

/// <summary>The bare-process baseline and the control plane's creates, measured in the same run.</summary>
internal sealed record SequentialResult(IReadOnlyList<BareStart> Baseline, IReadOnlyList<CreateTiming> ControlPlane, TimeSpan MedianPollRoundTrip);

/// <summary>One run: start the control plane, measure both paths interleaved, then creates in parallel; clean up whatever happens.</summary>
internal static class Benchmark
{
    private static readonly TimeSpan s_deleteTimeout = TimeSpan.FromSeconds(60);

    public static async Task<int> RunAsync(BenchOptions options, CancellationToken cancellationToken)
    {
        var workDirectory = Path.Combine(Path.GetTempPath(), "cp-bench", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(workDirectory);
        ControlPlaneHost? host = null;
        try
        {
            var controlPlane = ControlPlaneHost.LocateBuild();
            var template = GarnetLaunchTemplate.Load(Path.GetDirectoryName(controlPlane)!, options.Size);
            Console.WriteLine($"Control plane: {controlPlane}");
            Console.WriteLine($"Work directory: {workDirectory}");
            host = await ControlPlaneHost.StartAsync(controlPlane, workDirectory, cancellationToken);
            Console.WriteLine($"Control plane ready on {host.BaseAddress}");

            using var api = new ControlPlaneClient(host.BaseAddress, host.AdminApiKey);
            var creates = new InstanceCreates(api, host, options.Size, options.PollInterval);
            var baseline = new BareGarnet(template, workDirectory, options.PollInterval);
            var sequential = await MeasureSequentialAsync(options, baseline, creates, api, cancellationToken);

            // The same load by hand first: how long the machine takes to bring up that many Garnets at once.
            Console.WriteLine($"{options.Count} bare Garnets at once…");
            var concurrentBaseline = await baseline.MeasureConcurrentStartsAsync(options.Count, cancellationToken);
            Console.WriteLine($"{options.Count} creates at once (fresh tenant)…");
            var tenantId = await api.CreateTenantAsync("Benchmark concurrent", "enterprise", cancellationToken);
            var names = Enumerable.Range(1, options.Count).Select(index => $"bench-c-{index}").ToList();
            var concurrent = await creates.CreateAllAtOnceAsync(tenantId, names, cancellationToken);

            Report.Print(options, template.Version, sequential, concurrentBaseline, concurrent);
            await Task.WhenAll(concurrent.Creates.Select(create => api.DeleteInstanceAsync(tenantId, create.InstanceId, s_deleteTimeout, cancellationToken)));
            return 0;
        }
        catch (BenchmarkFailedException failure)
        {
            await Console.Error.WriteLineAsync($"Benchmark failed: {failure.Message}");
            if (host is not null && File.Exists(host.LogFile))
            {
                await Console.Error.WriteLineAsync($"Last lines of the control plane's log:\n{string.Join('\n', File.ReadLines(host.LogFile).TakeLast(20))}");
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

            DetachedProcesses.KillUnder(workDirectory);
            Directory.Delete(workDirectory, recursive: true);
            Console.WriteLine($"Cleaned up {workDirectory}");
        }
    }

    private static async Task<SequentialResult> MeasureSequentialAsync(
        BenchOptions options, BareGarnet baseline, InstanceCreates creates, ControlPlaneClient api, CancellationToken cancellationToken)
    {
        Console.WriteLine($"{options.Warmup} warm-up pairs, then {options.Count} pairs (bare Garnet and control plane, interleaved)…");
        var tenantId = await api.CreateTenantAsync("Benchmark sequential", "enterprise", cancellationToken);
        var bare = new List<BareStart>();
        var created = new List<CreateTiming>();
        for (var pair = 1; pair <= options.Warmup + options.Count; pair++)
        {
            // Interleaved (A/B, then B/A): each pair measures both paths back to back, so a burst of load from
            // another build on this shared machine hits both alike, and alternating which goes first keeps a
            // slow drift from favouring either. Each control-plane instance is deleted before the next
            // measurement, as each bare Garnet is killed, so both paths always start on a machine without
            // other instances. Warm-up pairs (JIT, first-use of the grains, SQLite and the page cache) are dropped.
            BareStart bareStart;
            CreateTiming create;
            if (pair % 2 == 1)
            {
                bareStart = await baseline.MeasureStartAsync(cancellationToken);
                create = await CreateThenDeleteAsync(pair);
            }
            else
            {
                create = await CreateThenDeleteAsync(pair);
                bareStart = await baseline.MeasureStartAsync(cancellationToken);
            }

            if (pair <= options.Warmup)
            {
                creates.PollRoundTrips.Clear();
                Console.WriteLine($"  warm-up {pair}/{options.Warmup}: baseline {Report.Ms(bareStart.ToPong)}, control plane {Report.Ms(create.ToRunning)}");
                continue;
            }

            bare.Add(bareStart);
            created.Add(create);
            Console.WriteLine($"  {pair - options.Warmup,3}/{options.Count}: baseline {Report.Ms(bareStart.ToPong)}, control plane {Report.Ms(create.ToRunning)}");
        }

        return new SequentialResult(bare, created, Statistics.Median(creates.PollRoundTrips));

        async Task<CreateTiming> CreateThenDeleteAsync(int pair)
        {
            var create = await creates.CreateAndWaitAsync(tenantId, $"bench-{pair}", cancellationToken);
            await api.DeleteInstanceAsync(tenantId, create.InstanceId, s_deleteTimeout, cancellationToken);
            return create;
        }
    }
}
