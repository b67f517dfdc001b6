using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Microsoft.Data.Sqlite;

namespace ControlPlane.Bench;

internal sealed record SteadyStateOptions(int Instances, TimeSpan Window, string? Baseline);

/// <summary>One build's figures: medians over its instances.</summary>
internal sealed record SteadyStateFigures(double WritesPerCreate, double ConnectionsPerMinute, double CommandsPerMinute);

/// <summary>
/// What an instance costs while nothing happens to it, on the real embedded host: whole-state writes of its grain for
/// one create (the row's version in the database), and the connections and commands the control plane sends to each
/// running Garnet per minute (reconcile checks and SLA probes together), read from Garnet's own INFO counters. Given
/// another build of the control plane (<c>--baseline</c>, e.g. an earlier commit's), it measures that one first, on
/// the same machine in the same run, and prints the ratios.
/// </summary>
internal static class SteadyStateBenchmark
{
    public static async Task<int> RunAsync(SteadyStateOptions options, CancellationToken cancellationToken)
    {
        SteadyStateFigures? baseline = null;
        if (options.Baseline is { } baselineBuild)
        {
            Console.WriteLine($"Baseline: {baselineBuild}");
            baseline = await MeasureAsync(baselineBuild, options, cancellationToken);
            Print("baseline", baseline);
        }

        var current = ControlPlaneHost.LocateBuild();
        Console.WriteLine($"This build: {current}");
        var figures = await MeasureAsync(current, options, cancellationToken);
        Print("this build", figures);
        if (baseline is not null)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"""
                Ratios this build / baseline: writes per create {figures.WritesPerCreate / baseline.WritesPerCreate:0.00}, connections {figures.ConnectionsPerMinute / baseline.ConnectionsPerMinute:0.00}, commands {figures.CommandsPerMinute / baseline.CommandsPerMinute:0.00}
                """));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"steady-state writes-per-create={figures.WritesPerCreate:0} connections-per-minute={figures.ConnectionsPerMinute:0.0} commands-per-minute={figures.CommandsPerMinute:0.0}"));
        return 0;
    }

    private static void Print(string what, SteadyStateFigures figures) => Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"""
          {what}: whole-state writes per create {figures.WritesPerCreate:0}; per running instance and minute: {figures.ConnectionsPerMinute:0.0} connections, {figures.CommandsPerMinute:0.0} commands
        """));

    private static async Task<SteadyStateFigures> MeasureAsync(string controlPlaneDll, SteadyStateOptions options, CancellationToken cancellationToken)
    {
        var workDirectory = Path.Combine(Path.GetTempPath(), "cp-bench", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(workDirectory);
        try
        {
            await using var host = await ControlPlaneHost.StartAsync(controlPlaneDll, workDirectory, cancellationToken);
            using var client = new ControlPlaneClient(host.BaseAddress, host.AdminApiKey);
            var tenantId = await client.CreateTenantAsync("Steady state", "enterprise", cancellationToken);
            var instances = new List<(string Id, int Port, string Password)>();
            for (var i = 0; i < options.Instances; i++)
            {
                var operation = await client.CreateInstanceAsync(tenantId, $"steady-{i}", "small", cancellationToken);
                var id = (string)operation["instanceId"]!;
                await client.WaitForOperationAsync(tenantId, (string)operation["id"]!, TimeSpan.FromMinutes(2), cancellationToken);
                var credentials = await client.GetAsync($"/api/v1/tenants/{tenantId}/instances/{id}/credentials", cancellationToken);
                instances.Add((id, (int)credentials["port"]!, (string)credentials["password"]!));
            }

            var writes = instances.Select(instance => (double)WritesOf(host.DataDirectory, instance.Id)).ToList();
            var before = new List<(long Connections, long Commands)>();
            foreach (var instance in instances)
            {
                before.Add(await InfoAsync(instance.Port, instance.Password, cancellationToken));
            }

            Console.WriteLine($"  {options.Instances} instances running; counting what reaches them for {options.Window.TotalSeconds:0} s…");
            await Task.Delay(options.Window, cancellationToken);
            var perMinute = new List<(double Connections, double Commands)>();
            for (var i = 0; i < instances.Count; i++)
            {
                var after = await InfoAsync(instances[i].Port, instances[i].Password, cancellationToken);
                // Our own INFO reads are one connection and two commands (AUTH, INFO) each; leave the second one's out.
                var minutes = options.Window.TotalMinutes;
                perMinute.Add(((after.Connections - before[i].Connections - 1) / minutes, (after.Commands - before[i].Commands - 2) / minutes));
            }

            return new SteadyStateFigures(
                Statistics.Median(writes), Statistics.Median(perMinute.Select(p => p.Connections)), Statistics.Median(perMinute.Select(p => p.Commands)));
        }
        finally
        {
            DetachedProcesses.KillUnder(workDirectory);
            Directory.Delete(workDirectory, recursive: true);
        }
    }

    /// <summary>The instance grain's row version: one per whole-state write since the row was inserted.</summary>
    private static long WritesOf(string dataDirectory, string instanceId)
    {
        using var connection = new SqliteConnection($"Data Source={Path.Combine(dataDirectory, "controlplane.db")};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT etag FROM grain_state WHERE state_name = 'instance' AND grain_id LIKE @id;";
        command.Parameters.AddWithValue("@id", $"%/{instanceId}");
        return (long)(command.ExecuteScalar() ?? throw new BenchmarkFailedException($"No stored state for instance {instanceId}."));
    }

    /// <summary>Garnet's total_connections_received and total_commands_processed, over one AUTH + INFO connection.</summary>
    private static async Task<(long Connections, long Commands)> InfoAsync(int port, string password, CancellationToken cancellationToken)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync("127.0.0.1", port, cancellationToken);
        var passwordBytes = Encoding.UTF8.GetBytes(password);
        byte[] request = [.. Encoding.ASCII.GetBytes($"*2\r\n$4\r\nAUTH\r\n${passwordBytes.Length}\r\n"), .. passwordBytes, .. "\r\n*1\r\n$4\r\nINFO\r\n"u8.ToArray()];
        await socket.SendAsync(request, SocketFlags.None, cancellationToken);
        var reply = new StringBuilder();
        var buffer = new byte[8192];
        while (!HasCounter(reply.ToString(), "total_connections_received") || !HasCounter(reply.ToString(), "total_commands_processed"))
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
            if (read == 0)
            {
                throw new BenchmarkFailedException($"Garnet on port {port} closed the connection before answering INFO: {reply}");
            }

            reply.Append(Encoding.UTF8.GetString(buffer, 0, read));
        }

        return (Counter(reply.ToString(), "total_connections_received"), Counter(reply.ToString(), "total_commands_processed"));
    }

    private static bool HasCounter(string info, string name) =>
        info.IndexOf(name + ":", StringComparison.Ordinal) is >= 0 and var at && info.IndexOf('\r', at) > at;

    private static long Counter(string info, string name)
    {
        var start = info.IndexOf(name + ":", StringComparison.Ordinal) + name.Length + 1;
        var end = info.IndexOf('\r', start);
        return long.Parse(info[start..end], CultureInfo.InvariantCulture);
    }
}
