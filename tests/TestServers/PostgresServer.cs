using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace TestServers;

/// <summary>
/// A real PostgreSQL server for tests. <c>.ci/run</c> starts one on loopback and names it in
/// <c>CONTROLPLANE_TEST_POSTGRES</c> (a connection string to a superuser); without it, the first test that asks starts
/// a throwaway server (initdb + pg_ctl, as DESIGN.md describes) that stops when the test process exits.
/// Every caller gets its own database, so tests never see each other's rows.
/// </summary>
public static class PostgresServer
{
    public const string EnvironmentVariable = "CONTROLPLANE_TEST_POSTGRES";

    private static readonly Lazy<string> s_adminConnectionString = new(StartOrFind, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>A connection string to a superuser on the server (database <c>postgres</c>).</summary>
    public static string AdminConnectionString => s_adminConnectionString.Value;

    /// <summary>Creates an empty database and answers a connection string to it.</summary>
    public static async Task<string> CreateDatabaseAsync(string prefix = "test")
    {
        var name = $"{prefix}_{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 33, 63)].ToLowerInvariant();
        await using (var connection = new NpgsqlConnection(AdminConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await command.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name }.ConnectionString;
    }

    private static string StartOrFind()
    {
        var configured = Environment.GetEnvironmentVariable(EnvironmentVariable);
        return string.IsNullOrWhiteSpace(configured) ? StartThrowaway() : configured;
    }

    private static string StartThrowaway()
    {
        var server = ThrowawayPostgres.Start();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => server.Dispose();
        return server.ConnectionString;
    }

    internal const string DirectoryPrefix = "cp-test-pg-";
    internal const string OwnerFile = "owner";
    internal const string Binaries = "/usr/lib/postgresql/15/bin";

    /// <summary>
    /// The test host is often ended without running exit handlers (the runner kills it), which would leave its server
    /// running: stop and remove every throwaway server whose owning process is gone before starting another.
    /// </summary>
    internal static void StopAbandonedServers()
    {
        foreach (var directory in Directory.EnumerateDirectories(Path.GetTempPath(), DirectoryPrefix + "*"))
        {
            try
            {
                var owner = Path.Combine(directory, OwnerFile);
                var abandoned = File.Exists(owner)
                    ? !IsAlive(File.ReadAllText(owner))
                    : Directory.GetCreationTimeUtc(directory) < DateTime.UtcNow.AddMinutes(-10);
                if (!abandoned)
                {
                    continue;
                }

                if (Directory.Exists(Path.Combine(directory, "data")))
                {
                    Run($"{Binaries}/pg_ctl", $"-D {directory}/data -m immediate stop", Environment.UserName == "root", throwOnFailure: false);
                }

                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>A process id with its start time, so a reused id is not taken for the owner.</summary>
    internal static string OwnerIdentity(int processId) => $"{processId} {StartTime(processId)}";

    private static bool IsAlive(string ownerIdentity)
    {
        return int.TryParse(ownerIdentity.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture, out var processId)
            && StartTime(processId) is not null
            && OwnerIdentity(processId) == ownerIdentity;
    }

    private static string? StartTime(int processId)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{processId}/stat");
            // Field 22 (starttime), counted after the command name, which may itself contain spaces.
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[19];
        }
        catch (IOException)
        {
            return null;
        }
    }

    internal static void Run(string file, string arguments, bool asPostgres, bool throwOnFailure = true)
    {
        var start = asPostgres
            ? new ProcessStartInfo("runuser", $"-u postgres -- {file} {arguments}")
            : new ProcessStartInfo(file, arguments);
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0 && throwOnFailure)
        {
            throw new InvalidOperationException($"{file} {arguments} exited {process.ExitCode}: {error}{output.Result}");
        }
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
