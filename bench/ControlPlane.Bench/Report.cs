using System.Globalization;

namespace ControlPlane.Bench;

/// <summary>Tables for people, then one summary line for scripts.</summary>
internal static class Report
{
    private const double TargetRatio = 1.3;
    private const int Label = -44;
    private const int Phase = -62;

    public static string Ms(TimeSpan value) => string.Create(CultureInfo.InvariantCulture, $"{value.TotalMilliseconds:0} ms");

    public static void Print(
        BenchOptions options, string version, SequentialResult sequential, ConcurrentStarts concurrentBaseline, ConcurrentCreates concurrent, ConcurrentCreates daprConcurrent)
    {
        var baseline = sequential.Baseline.Select(start => start.ToPong).ToList();
        var controlPlane = sequential.ControlPlane.Select(create => create.ToRunning).ToList();
        var dapr = sequential.Dapr.Select(create => create.ToRunning).ToList();
        var perInstanceDapr = daprConcurrent.Creates.Select(create => create.ToRunning).ToList();
        var perInstanceBaseline = concurrentBaseline.Each;
        var perInstance = concurrent.Creates.Select(create => create.ToRunning).ToList();
        var medianRatio = Statistics.Median(controlPlane) / Statistics.Median(baseline);
        var p95Ratio = Statistics.P95(controlPlane) / Statistics.P95(baseline);
        var concurrentRatio = concurrent.FirstPostToAllRunning / concurrentBaseline.FirstStartToAllAnswering;

        Console.WriteLine();
        Console.WriteLine($"Create to Running, Garnet {version} size {options.Size}: {options.Count} samples per path after {options.Warmup} warm-up rounds, interleaved");
        Console.WriteLine($"  {"",Label}{"median",10}{"p95",10}{"min",10}{"max",10}");
        Row("baseline: bare Garnet, process start to PONG", baseline);
        Row("control plane: POST to Running (sequential)", controlPlane);
        Row("Dapr path: POST to Running (sequential)", dapr);
        Console.WriteLine(Invariant($"  {"ratio control plane / baseline",Label}{medianRatio,10:0.00}{p95Ratio,10:0.00}"));
        Ratio("ratio Dapr path / baseline", dapr, baseline);
        Ratio("ratio Dapr path / embedded control plane", dapr, controlPlane);
        Console.WriteLine(Invariant($"  target: median ratio <= {TargetRatio:0.0}: {(medianRatio <= TargetRatio ? "met" : "missed")}"));

        Console.WriteLine();
        Console.WriteLine("Where a sequential create spends its time (median of each phase; medians need not add up):");
        Phases(sequential.ControlPlane);
        Console.WriteLine($"  {"(GET instance round trip while polling)",Phase - 2}{Ms(sequential.MedianPollRoundTrip),10}");
        Console.WriteLine("  Dapr path:");
        Phases(sequential.Dapr);

        // Garnet's start is mostly CPU (JIT): when it takes longer under the control plane for the same CPU, it waited for a core.
        Console.WriteLine();
        Console.WriteLine("CPU used during a sequential start (median; /proc counts in 10 ms):");
        CpuHeader("");
        CpuRow("baseline (client: this program's PINGs)", [.. sequential.Baseline.Select(start => start.Cpu)]);
        CpuRow("control plane (client: this program's GETs)", [.. sequential.ControlPlane.Select(create => create.Cpu!)]);
        CpuRow("Dapr path (host: control plane + Provisioner)", [.. sequential.Dapr.Select(create => create.Cpu!)]);

        Console.WriteLine();
        Console.WriteLine($"{options.Count} at once: from the first start or POST until all answer PONG or are Running, and each one's own time");
        Console.WriteLine($"  {"",Label}{"all",10}{"median",10}{"p95",10}{"max",10}");
        ConcurrentRow("baseline: bare Garnets, start to PONG", perInstanceBaseline, concurrentBaseline.FirstStartToAllAnswering);
        ConcurrentRow("control plane: POST to Running (new tenant)", perInstance, concurrent.FirstPostToAllRunning);
        Console.WriteLine(Invariant(
            $"  {"ratio control plane / baseline",Label}{concurrentRatio,10:0.00}{Statistics.Median(perInstance) / Statistics.Median(perInstanceBaseline),10:0.00}{Statistics.P95(perInstance) / Statistics.P95(perInstanceBaseline),10:0.00}"));
        ConcurrentRow("Dapr path: POST to Running (new tenant)", perInstanceDapr, daprConcurrent.FirstPostToAllRunning);
        Console.WriteLine(Invariant(
            $"  {"ratio Dapr path / embedded",Label}{daprConcurrent.FirstPostToAllRunning / concurrent.FirstPostToAllRunning,10:0.00}{Statistics.Median(perInstanceDapr) / Statistics.Median(perInstance),10:0.00}{Statistics.P95(perInstanceDapr) / Statistics.P95(perInstance),10:0.00}"));
        ConcurrentRow("control plane: POST to 202 Accepted", [.. concurrent.Creates.Select(create => create.ToAccepted)], all: null);
        ConcurrentRow("Dapr path: POST to 202 Accepted", [.. daprConcurrent.Creates.Select(create => create.ToAccepted)], all: null);
        Console.WriteLine();
        CpuHeader("CPU used meanwhile, all instances together");
        CpuRow("baseline", [concurrentBaseline.Cpu]);
        CpuRow("control plane", [concurrent.Cpu]);
        CpuRow("Dapr path", [daprConcurrent.Cpu]);
        Console.WriteLine("  Phases of the control plane's creates (median):");
        Phases(concurrent.Creates);
        Console.WriteLine($"  {"(instance list round trip while polling)",Phase - 2}{Ms(concurrent.MedianListRoundTrip),10}");
        Console.WriteLine("  Phases of the Dapr path's creates (median):");
        Phases(daprConcurrent.Creates);

        Console.WriteLine();
        Console.WriteLine(string.Join(' ',
            Invariant($"create-to-running median={Whole(Statistics.Median(controlPlane))}ms p95={Whole(Statistics.P95(controlPlane))}ms"),
            Invariant($"baseline median={Whole(Statistics.Median(baseline))}ms p95={Whole(Statistics.P95(baseline))}ms"),
            Invariant($"ratio median={medianRatio:0.00} p95={p95Ratio:0.00};"),
            Invariant($"{options.Count} concurrent: {Whole(concurrent.FirstPostToAllRunning)}ms"),
            Invariant($"(per-instance median={Whole(Statistics.Median(perInstance))}ms p95={Whole(Statistics.P95(perInstance))}ms;"),
            Invariant($"baseline {Whole(concurrentBaseline.FirstStartToAllAnswering)}ms, ratio {concurrentRatio:0.00});"),
            Invariant($"dapr median={Whole(Statistics.Median(dapr))}ms p95={Whole(Statistics.P95(dapr))}ms"),
            Invariant($"ratio to embedded median={Statistics.Median(dapr) / Statistics.Median(controlPlane):0.00} p95={Statistics.P95(dapr) / Statistics.P95(controlPlane):0.00};"),
            Invariant($"{options.Count} concurrent over dapr: {Whole(daprConcurrent.FirstPostToAllRunning)}ms")));
    }

    private static void Ratio(string label, IReadOnlyList<TimeSpan> values, IReadOnlyList<TimeSpan> reference) =>
        Console.WriteLine(Invariant($"  {label,Label}{Statistics.Median(values) / Statistics.Median(reference),10:0.00}{Statistics.P95(values) / Statistics.P95(reference),10:0.00}"));

    private static void Row(string label, IReadOnlyList<TimeSpan> values) =>
        Console.WriteLine($"  {label,Label}{Ms(Statistics.Median(values)),10}{Ms(Statistics.P95(values)),10}{Ms(values.Min()),10}{Ms(values.Max()),10}");

    private static void ConcurrentRow(string label, IReadOnlyList<TimeSpan> values, TimeSpan? all) =>
        Console.WriteLine($"  {label,Label}{(all is { } total ? Ms(total) : ""),10}{Ms(Statistics.Median(values)),10}{Ms(Statistics.P95(values)),10}{Ms(values.Max()),10}");

    private static void CpuHeader(string title) => Console.WriteLine($"  {title,Label}{"Garnet",10}{"host",10}{"client",10}");

    private static void CpuRow(string label, IReadOnlyList<CpuUse> uses)
    {
        var garnet = uses.Where(use => use.Garnet is not null).Select(use => use.Garnet!.Value).ToList();
        var host = uses.Where(use => use.Host is not null).Select(use => use.Host!.Value).ToList();
        Console.WriteLine(
            $"  {label,Label}{(garnet.Count > 0 ? Ms(Statistics.Median(garnet)) : "-"),10}{(host.Count > 0 ? Ms(Statistics.Median(host)) : "-"),10}{Ms(Statistics.Median(uses.Select(use => use.Client))),10}");
    }

    private static void Phases(IReadOnlyCollection<CreateTiming> creates)
    {
        var timed = creates.Where(CreatePhases.IsFullyTimed).ToList();
        foreach (var (phase, median) in CreatePhases.Medians(timed))
        {
            Console.WriteLine($"    {phase,Phase}{Ms(median),10}");
        }

        if (timed.Count < creates.Count)
        {
            // On a bus a step's events can be overtaken by its phase's outcome; such a step has no times of its own.
            Console.WriteLine($"    ({creates.Count - timed.Count} of {creates.Count} creates had a step without times and are left out)");
        }
    }

    private static string Whole(TimeSpan value) => Invariant($"{value.TotalMilliseconds:0}");

    private static string Invariant(FormattableString text) => FormattableString.Invariant(text);
}
