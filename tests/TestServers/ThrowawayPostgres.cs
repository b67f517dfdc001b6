namespace TestServers;

/// <summary>
/// A PostgreSQL server of one's own (initdb + pg_ctl on a free port, as DESIGN.md describes), for a test that must stop
/// and start it, e.g. to show that nothing changes while the database is down. Removed on dispose, or by the next test
/// run once its owner is gone.
/// </summary>
public sealed class ThrowawayPostgres : IDisposable
{
    private readonly string _directory;
    private readonly int _port;
    private readonly bool _asPostgres = Environment.UserName == "root";

    private ThrowawayPostgres(string directory, int port)
    {
        (_directory, _port) = (directory, port);
    }

    public string ConnectionString => $"Host=127.0.0.1;Port={_port};Username=postgres;Database=postgres;Pooling=true";

    public static ThrowawayPostgres Start()
    {
        PostgresServer.StopAbandonedServers();
        var directory = Path.Combine(Path.GetTempPath(), $"{PostgresServer.DirectoryPrefix}{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, PostgresServer.OwnerFile), PostgresServer.OwnerIdentity(Environment.ProcessId));
        var server = new ThrowawayPostgres(directory, PostgresServer.FreePort());
        if (server._asPostgres)
        {
            PostgresServer.Run("chown", $"postgres {directory}", asPostgres: false);
        }

        PostgresServer.Run($"{PostgresServer.Binaries}/initdb", $"-D {directory}/data -A trust -U postgres --no-sync", server._asPostgres);
        server.Resume();
        return server;
    }

    /// <summary>Stops the server (fast shutdown: connections are cut, as when a database fails over or goes down).</summary>
    public void Halt() => PostgresServer.Run($"{PostgresServer.Binaries}/pg_ctl", $"-D {_directory}/data -w -m fast stop", _asPostgres);

    /// <summary>Starts it again on the same port with the same data.</summary>
    public void Resume() => PostgresServer.Run(
        $"{PostgresServer.Binaries}/pg_ctl",
        $"-D {_directory}/data -w -l {_directory}/server.log -o \"-p {_port} -c listen_addresses=127.0.0.1 -k {_directory} -c fsync=off -c max_connections=300\" start",
        _asPostgres);

    public void Dispose()
    {
        PostgresServer.Run($"{PostgresServer.Binaries}/pg_ctl", $"-D {_directory}/data -m immediate stop", _asPostgres, throwOnFailure: false);
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
