using System.Globalization;

namespace ControlPlane.Bench;

/// <summary>A table for people, then one summary line for scripts.</summary>
internal static class Report
{
    private const double TargetRatio = 1.3;

    public static string Ms(TimeSpan value) => string.Create(CultureInfo.InvariantCulture, $"{value.TotalMilliseconds:0} ms");

    public static void Print(BenchOptions options, string version, SequentialResult sequential, ConcurrentCreates concurrent)
    {
        var baseline = sequential.Baseline;
        var controlPlane = sequential.ControlPlane.Select(create => create.ToRunning).ToList();
        var medianRatio = Statistics.Median(controlPlane) / Statistics.Median(baseline);
        var p95Ratio = Statistics.P95(controlPlane) / Statistics.P95(baseline);
        var perInstance = concurrent.Creates.Select(create => create.ToRunning).ToList();

        Console.WriteLine();
        Console.WriteLine($"Create to Running, Garnet {version} size {options.Size}: {options.Count} samples per path after {options.Warmup} warm-up pairs, interleaved");
        Console.WriteLine($"  {"",-44}{"median",10}{"p95",10}{"min",10}{"max",10}");
        Row("baseline: bare Garnet, process start to PONG", baseline);
        Row("control plane: POST to Running (sequential)", controlPlane);
        Console.WriteLine(Invariant($"  {"ratio control plane / baseline",-44}{medianRatio,10:0.00}{p95Ratio,10:0.00}"));
        Console.WriteLine(Invariant($"  target: median ratio <= {TargetRatio:0.0}: {(medianRatio <= TargetRatio ? "met" : "missed")}"));

        Console.WriteLine();
        Console.WriteLine("Where a sequential create spends its time (median of each phase; medians need not add up):");
        Phases(sequential.ControlPlane);
        Console.WriteLine($"  {"(GET instance round trip while polling)",-64}{Ms(sequential.MedianPollRoundTrip),10}");

        Console.WriteLine();
        Console.WriteLine($"{options.Count} creates at once, fresh tenant: first POST to all Running {Ms(concurrent.FirstPostToAllRunning)}");
        Console.WriteLine($"  {"",-44}{"median",10}{"p95",10}{"min",10}{"max",10}");
        Row("per instance: POST to Running", perInstance);
        Row("per instance: POST to 202 Accepted", [.. concurrent.Creates.Select(create => create.ToAccepted)]);
        Console.WriteLine("  Phases (median):");
        Phases(concurrent.Creates);
        Console.WriteLine($"  {"(instance list round trip while polling)",-64}{Ms(concurrent.MedianListRoundTrip),10}");

        Console.WriteLine();
        Console.WriteLine(string.Join(' ',
            Invariant($"create-to-running median={Whole(Statistics.Median(controlPlane))}ms p95={Whole(Statistics.P95(controlPlane))}ms"),
            Invariant($"baseline median={Whole(Statistics.Median(baseline))}ms p95={Whole(Statistics.P95(baseline))}ms"),
            Invariant($"ratio median={medianRatio:0.00} p95={p95Ratio:0.00};"),
            Invariant($"{options.Count} concurrent: {Whole(concurrent.FirstPostToAllRunning)}ms"),
            Invariant($"(per-instance median={Whole(Statistics.Median(perInstance))}ms p95={Whole(Statistics.P95(perInstance))}ms)")));
    }

    private static void Row(string label, IReadOnlyList<TimeSpan> values) =>
        Console.WriteLine(
            $"  {label,-44}{Ms(Statistics.Median(values)),10}{Ms(Statistics.P95(values)),10}{Ms(values.Min()),10}{Ms(values.Max()),10}");

    private static void Phases(IEnumerable<CreateTiming> creates)
    {
        foreach (var (phase, median) in CreatePhases.Medians(creates))
        {
            Console.WriteLine($"    {phase,-62}{Ms(median),10}");
        }
    }

    private static string Whole(TimeSpan value) => Invariant($"{value.TotalMilliseconds:0}");

    private static string Invariant(FormattableString text) => FormattableString.Invariant(text);
}
