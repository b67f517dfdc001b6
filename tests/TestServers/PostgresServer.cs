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
    private const string Binaries = "/usr/lib/postgresql/15/bin";

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
        var directory = Path.Combine(Path.GetTempPath(), $"cp-test-pg-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        var port = FreePort();
        var asPostgres = Environment.UserName == "root";
        if (asPostgres)
        {
            Run("chown", $"postgres {directory}", asPostgres: false);
        }

        Run($"{Binaries}/initdb", $"-D {directory}/data -A trust -U postgres --no-sync", asPostgres);
        Run($"{Binaries}/pg_ctl", $"-D {directory}/data -w -l {directory}/server.log -o \"-p {port} -c listen_addresses=127.0.0.1 -k {directory} -c fsync=off -c max_connections=300\" start", asPostgres);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            Run($"{Binaries}/pg_ctl", $"-D {directory}/data -m immediate stop", asPostgres, throwOnFailure: false);
            Directory.Delete(directory, recursive: true);
        };

        return $"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres;Pooling=true";
    }

    private static void Run(string file, string arguments, bool asPostgres, bool throwOnFailure = true)
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

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
