using System.Diagnostics;
using System.Text.Json.Nodes;

namespace ControlPlane.Bench;

/// <summary>CPU used during one start: by Garnet until it answered, by the control plane's host, by this program.</summary>
internal sealed record CpuUse(TimeSpan? Garnet, TimeSpan? Host, TimeSpan Client);

/// <summary>One create as the client saw it, with the create operation as it ended (its steps carry their own timestamps).</summary>
internal sealed record CreateTiming(string InstanceId, DateTimeOffset SentAt, TimeSpan ToAccepted, TimeSpan ToRunning, JsonNode Operation)
{
    /// <summary>Measured for sequential creates only.</summary>
    public CpuUse? Cpu { get; init; }

    public DateTimeOffset RunningSeenAt => SentAt + ToRunning;
}

/// <summary>Creates launched together: each one's timing, and how long until the last was Running.</summary>
internal sealed record ConcurrentCreates(IReadOnlyList<CreateTiming> Creates, TimeSpan FirstPostToAllRunning, TimeSpan MedianListRoundTrip, CpuUse Cpu);

/// <summary>Creates Garnet instances through the API and times them from the POST until the API says Running.</summary>
/// <param name="pollInterval">The pause between two polls; tight, so that polling adds little to the time measured.</param>
internal sealed class InstanceCreates(ControlPlaneClient api, ControlPlaneHost host, string size, TimeSpan pollInterval)
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(90);

    public List<TimeSpan> PollRoundTrips { get; } = [];

    /// <summary>Creates one instance and polls it until it is Running.</summary>
    public async Task<CreateTiming> CreateAndWaitAsync(string tenantId, string name, CancellationToken cancellationToken)
    {
        var hostCpu = host.Cpu();
        var clientCpu = ProcessCpu.OfThisProcess();
        var sentAt = DateTimeOffset.UtcNow;
        var started = Stopwatch.GetTimestamp();
        var operation = await api.CreateInstanceAsync(tenantId, name, size, cancellationToken);
        var accepted = Stopwatch.GetElapsedTime(started);
        var instanceId = (string)operation["instanceId"]!;
        while (true)
        {
            var polled = Stopwatch.GetTimestamp();
            var instance = await api.GetInstanceAsync(tenantId, instanceId, cancellationToken);
            PollRoundTrips.Add(Stopwatch.GetElapsedTime(polled));
            var elapsed = Stopwatch.GetElapsedTime(started);
            switch ((string?)instance["state"])
            {
                case "Running":
                    var cpu = new CpuUse(
                        DetachedProcesses.Under(host.InstanceDataDirectory(instanceId)).Select(ProcessCpu.Of).FirstOrDefault(),
                        host.Cpu() - hostCpu,
                        ProcessCpu.OfThisProcess() - clientCpu);
                    var finished = await api.GetOperationAsync(tenantId, (string)operation["id"]!, cancellationToken);
                    return new CreateTiming(instanceId, sentAt, accepted, elapsed, finished) { Cpu = cpu };
                case "Failed":
                    throw new BenchmarkFailedException($"Instance {name} ({instanceId}) failed: {(string?)instance["failureReason"]}");
            }

            if (elapsed > s_timeout)
            {
                throw new BenchmarkFailedException($"Instance {name} ({instanceId}) was not Running within {s_timeout.TotalSeconds:0} s: {instance.ToJsonString()}");
            }

            await Task.Delay(pollInterval, cancellationToken);
        }
    }

    /// <summary>
    /// Sends every create at once, then watches the tenant's instance list until all are Running: one list
    /// instead of a GET per instance, because many pollers would load the host they measure.
    /// </summary>
    public async Task<ConcurrentCreates> CreateAllAtOnceAsync(string tenantId, IReadOnlyList<string> names, CancellationToken cancellationToken)
    {
        var hostCpu = host.Cpu();
        var clientCpu = ProcessCpu.OfThisProcess();
        var started = Stopwatch.GetTimestamp();
        var startedAt = DateTimeOffset.UtcNow;
        var sent = new TimeSpan[names.Count];
        var posts = names.Select(async (name, index) =>
        {
            sent[index] = Stopwatch.GetElapsedTime(started);
            var operation = await api.CreateInstanceAsync(tenantId, name, size, cancellationToken);
            return (Operation: operation, Accepted: Stopwatch.GetElapsedTime(started) - sent[index]);
        }).ToArray();

        var runningAt = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);
        var listRoundTrips = new List<TimeSpan>();
        while (runningAt.Count < names.Count)
        {
            if (posts.FirstOrDefault(post => post.IsFaulted) is { } failed)
            {
                await failed;
            }

            var polled = Stopwatch.GetTimestamp();
            var items = await api.ListInstancesAsync(tenantId, cancellationToken);
            listRoundTrips.Add(Stopwatch.GetElapsedTime(polled));
            var elapsed = Stopwatch.GetElapsedTime(started);
            foreach (var item in items)
            {
                var name = (string)item!["name"]!;
                switch ((string?)item["state"])
                {
                    case "Running":
                        runningAt.TryAdd(name, elapsed);
                        break;
                    case "Failed":
                        throw new BenchmarkFailedException($"Instance {name} ({(string?)item["id"]}) failed: {(string?)item["failureReason"]}");
                }
            }

            if (elapsed > s_timeout * 2)
            {
                throw new BenchmarkFailedException(
                    $"Only {runningAt.Count} of {names.Count} instances were Running after {elapsed.TotalSeconds:0} s.");
            }

            await Task.Delay(pollInterval, cancellationToken);
        }

        var cpu = new CpuUse(null, host.Cpu() - hostCpu, ProcessCpu.OfThisProcess() - clientCpu);
        var accepted = await Task.WhenAll(posts);
        var garnetCpu = accepted
            .SelectMany(post => DetachedProcesses.Under(host.InstanceDataDirectory((string)post.Operation["instanceId"]!)))
            .Select(processId => ProcessCpu.Of(processId) ?? TimeSpan.Zero)
            .Aggregate(TimeSpan.Zero, (sum, used) => sum + used);
        var creates = new List<CreateTiming>(names.Count);
        for (var index = 0; index < names.Count; index++)
        {
            var operation = accepted[index].Operation;
            var finished = await api.GetOperationAsync(tenantId, (string)operation["id"]!, cancellationToken);
            creates.Add(new CreateTiming(
                (string)operation["instanceId"]!,
                startedAt + sent[index],
                accepted[index].Accepted,
                runningAt[names[index]] - sent[index],
                finished));
        }

        return new ConcurrentCreates(creates, runningAt.Values.Max() - sent.Min(), Statistics.Median(listRoundTrips), cpu with { Garnet = garnetCpu });
    }
}
