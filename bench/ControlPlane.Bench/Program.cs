using System.CommandLine;
using System.Runtime.InteropServices;
using ControlPlane.Bench;

var count = new Option<int>("--count")
{
    Description = "Measured samples per path, and how many instances the concurrent run creates at once.",
    DefaultValueFactory = _ => 20,
};
var warmup = new Option<int>("--warmup")
{
    Description = "Rounds (one start per path) measured first and dropped (JIT, first use of grains, SQLite, gRPC channels and the page cache).",
    DefaultValueFactory = _ => 2,
};
var size = new Option<string>("--size")
{
    Description = "The catalog size of every instance.",
    DefaultValueFactory = _ => "small",
};
var pollInterval = new Option<int>("--poll-interval")
{
    Description = "Milliseconds between two polls of the API (and of PING for the baseline) while waiting for Running.",
    DefaultValueFactory = _ => 5,
};
count.Validators.Add(result =>
{
    if (result.GetValueOrDefault<int>() is < 1 or > 100)
    {
        result.AddError("--count must be between 1 and 100 (the enterprise plan's instance limit).");
    }
});
warmup.Validators.Add(result =>
{
    if (result.GetValueOrDefault<int>() < 0)
    {
        result.AddError("--warmup cannot be negative.");
    }
});
pollInterval.Validators.Add(result =>
{
    if (result.GetValueOrDefault<int>() is < 1 or > 1000)
    {
        result.AddError("--poll-interval must be between 1 and 1000 ms.");
    }
});

var root = new RootCommand(
    "Measures Create to Running of hosted Garnet instances through the real control plane (embedded, and over Dapr with the Provisioner app) against the same Garnet started by hand. " +
    "Exits non-zero only when something failed, never because a target was missed.")
{
    count,
    warmup,
    size,
    pollInterval,
};
root.SetAction((parsed, cancellationToken) => Benchmark.RunAsync(
    new BenchOptions(
        parsed.GetValue(count),
        parsed.GetValue(warmup),
        parsed.GetValue(size)!,
        TimeSpan.FromMilliseconds(parsed.GetValue(pollInterval))), cancellationToken));

var readSeconds = new Option<int>("--seconds")
{
    Description = "Seconds of reads per round and cluster.",
    DefaultValueFactory = _ => 5,
};
var readRounds = new Option<int>("--rounds")
{
    Description = "Measured rounds per cluster (after one warm-up round each).",
    DefaultValueFactory = _ => 5,
};
var readConcurrency = new Option<int>("--concurrency")
{
    Description = "Clients reading at once, spread evenly over the cluster's silos.",
    DefaultValueFactory = _ => 32,
};
var readTenants = new Option<int>("--tenants")
{
    Description = "Tenants (so tenant grains) read at random.",
    DefaultValueFactory = _ => 200,
};
foreach (var (option, lowest, highest) in new[] { (readSeconds, 1, 600), (readRounds, 1, 100), (readConcurrency, 1, 1024), (readTenants, 1, 10_000) })
{
    option.Validators.Add(result =>
    {
        if (result.GetValueOrDefault<int>() < lowest || result.GetValueOrDefault<int>() > highest)
        {
            result.AddError($"{option.Name} must be between {lowest} and {highest}.");
        }
    });
}

var grainReads = new Command(
    "grain-reads",
    "Measures read throughput of a 1-silo against a 2-silo cluster (cluster mode over PostgreSQL) in one run and prints the ratio.")
{
    readSeconds,
    readRounds,
    readConcurrency,
    readTenants,
};
grainReads.SetAction((parsed, cancellationToken) => GrainReadBenchmark.RunAsync(
    new GrainReadOptions(
        TimeSpan.FromSeconds(parsed.GetValue(readSeconds)),
        parsed.GetValue(readRounds),
        parsed.GetValue(readConcurrency),
        parsed.GetValue(readTenants)),
    cancellationToken));
root.Subcommands.Add(grainReads);

var steadyInstances = new Option<int>("--instances") { Description = "Running instances to measure.", DefaultValueFactory = _ => 5 };
var steadySeconds = new Option<int>("--seconds") { Description = "Seconds of counting what reaches each instance.", DefaultValueFactory = _ => 60 };
var steadyBaseline = new Option<string?>("--baseline")
{
    Description = "Another build's ControlPlane.dll (e.g. an earlier commit's Release output), measured first in the same run for ratios.",
};
steadyBaseline.Validators.Add(result =>
{
    if (result.GetValueOrDefault<string?>() is { } path && !File.Exists(path))
    {
        result.AddError($"--baseline {path}: no such file. Give the path of a built ControlPlane.dll.");
    }
});
var steadyState = new Command(
    "steady-state",
    "Measures what an instance costs while nothing happens to it: state writes per create, and probes per minute per running instance.")
{
    steadyInstances,
    steadySeconds,
    steadyBaseline,
};
steadyState.SetAction((parsed, cancellationToken) => SteadyStateBenchmark.RunAsync(
    new SteadyStateOptions(Math.Clamp(parsed.GetValue(steadyInstances), 1, 50), TimeSpan.FromSeconds(Math.Clamp(parsed.GetValue(steadySeconds), 10, 3600)), parsed.GetValue(steadyBaseline)),
    cancellationToken));
root.Subcommands.Add(steadyState);

// The first Ctrl+C (or SIGTERM) cancels the run, which then deletes what it created; a second one ends it at once.
using var stop = new CancellationTokenSource();
using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Cancel);
using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Cancel);
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, stop.Token);

void Cancel(PosixSignalContext context)
{
    context.Cancel = !stop.IsCancellationRequested;
    stop.Cancel();
}
