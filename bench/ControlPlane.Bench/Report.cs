using System.Globalization;

namespace ControlPlane.Bench;

/// <summary>A table for people, then one summary line for scripts.</summary>
internal static class Report
{
    private const double TargetRatio = 1.3;

    public static string Ms(TimeSpan value) => string.Create(CultureInfo.InvariantCulture, $"{value.TotalMilliseconds:0} ms");

    public static void Print(BenchOptions options, string version, SequentialResult sequential, ConcurrentStarts concurrentBaseline, ConcurrentCreates concurrent)
    {
        var baseline = sequential.Baseline.Select(start => start.ToPong).ToList();
        var controlPlane = sequential.ControlPlane.Select(create => create.ToRunning).ToList();
        var medianRatio = Statistics.Median(controlPlane) / Statistics.Median(baseline);
        var p95Ratio = Statistics.P95(controlPlane) / Statistics.P95(baseline);
        var perInstance = concurrent.Creates.Select(create => create.ToRunning).ToList();
        var concurrentRatio = concurrent.FirstPostToAllRunning / concurrentBaseline.FirstStartToAllAnswering;

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

        // Garnet's start is mostly CPU (JIT): if it takes longer under the control plane with the same CPU, it waited for a core.
        Console.WriteLine();
        Console.WriteLine("CPU used during a sequential start (median; /proc has 10 ms resolution):");
        Console.WriteLine($"  {"",-44}{"Garnet",10}{"host",10}{"client",10}");
        CpuRow("baseline (client: this program's PINGs)", [.. sequential.Baseline.Select(start => start.Cpu)]);
        CpuRow("control plane (client: this program's GETs)", [.. sequential.ControlPlane.Select(create => create.Cpu!)]);

        Console.WriteLine();
        Console.WriteLine($"{options.Count} at once: the first start or POST until all answer PONG or are Running, and each one's own time");
        Console.WriteLine($"  {"",-44}{"all",10}{"median",10}{"p95",10}{"max",10}");
        Console.WriteLine($"  {"baseline: bare Garnets, start to PONG",-44}{Ms(concurrentBaseline.FirstStartToAllAnswering),10}{Ms(Statistics.Median(concurrentBaseline.Each)),10}{Ms(Statistics.P95(concurrentBaseline.Each)),10}{Ms(concurrentBaseline.Each.Max()),10}");
        Console.WriteLine($"  {"control plane: POST to Running (new tenant)",-44}{Ms(concurrent.FirstPostToAllRunning),10}{Ms(Statistics.Median(perInstance)),10}{Ms(Statistics.P95(perInstance)),10}{Ms(perInstance.Max()),10}");
        Console.WriteLine(Invariant($"  {"ratio control plane / baseline",-44}{concurrentRatio,10:0.00}{Statistics.Median(perInstance) / Statistics.Median(concurrentBaseline.Each),10:0.00}{Statistics.P95(perInstance) / Statistics.P95(concurrentBaseline.Each),10:0.00}"));
        var accepted = concurrent.Creates.Select(create => create.ToAccepted).ToList();
        Console.WriteLine($"  {"control plane: POST to 202 Accepted",-44}{"",10}{Ms(Statistics.Median(accepted)),10}{Ms(Statistics.P95(accepted)),10}{Ms(accepted.Max()),10}");
        Console.WriteLine("  Phases (median):");
        Phases(concurrent.Creates);
        Console.WriteLine($"  {"(instance list round trip while polling)",-64}{Ms(concurrent.MedianListRoundTrip),10}");

        Console.WriteLine();
        Console.WriteLine(string.Join(' ',
            Invariant($"create-to-running median={Whole(Statistics.Median(controlPlane))}ms p95={Whole(Statistics.P95(controlPlane))}ms"),
            Invariant($"baseline median={Whole(Statistics.Median(baseline))}ms p95={Whole(Statistics.P95(baseline))}ms"),
            Invariant($"ratio median={medianRatio:0.00} p95={p95Ratio:0.00};"),
            Invariant($"{options.Count} concurrent: {Whole(concurrent.FirstPostToAllRunning)}ms"),
            Invariant($"(per-instance median={Whole(Statistics.Median(perInstance))}ms p95={Whole(Statistics.P95(perInstance))}ms;"),
            Invariant($"baseline {Whole(concurrentBaseline.FirstStartToAllAnswering)}ms, ratio {concurrentRatio:0.00})")));
    }

    private static void Row(string label, IReadOnlyList<TimeSpan> values) =>
        Console.WriteLine(
            $"  {label,-44}{Ms(Statistics.Median(values)),10}{Ms(Statistics.P95(values)),10}{Ms(values.Min()),10}{Ms(values.Max()),10}");

    private static void CpuRow(string label, IReadOnlyList<CpuUse> uses)
    {
        var garnet = uses.Where(use => use.Garnet is not null).Select(use => use.Garnet!.Value).ToList();
        var host = uses.Where(use => use.Host is not null).Select(use => use.Host!.Value).ToList();
        Console.WriteLine(
            $"  {label,-44}{(garnet.Count > 0 ? Ms(Statistics.Median(garnet)) : "-"),10}{(host.Count > 0 ? Ms(Statistics.Median(host)) : "-"),10}{Ms(Statistics.Median(uses.Select(use => use.Client))),10}");
    }

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
