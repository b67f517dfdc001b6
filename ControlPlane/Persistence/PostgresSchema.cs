using System.Reflection;
using Npgsql;

namespace ControlPlane.Persistence;

/// <summary>
/// Brings a PostgreSQL database up to the schema cluster mode needs: the scripts embedded from <c>Postgres/*.sql</c>
/// (the Orleans ADO.NET providers' tables and stored queries, then the control plane's own tables), each applied
/// once, in name order, and recorded in <c>controlplane_schema</c>. Never edit a shipped script: add the next one.
/// </summary>
public static class PostgresSchema
{
    private const string ResourcePrefix = "ControlPlane.Persistence.Postgres.";

    // Any fixed number: every silo that starts takes this lock first, so when several start at once one applies the
    // scripts and the others wait, then find them applied.
    private const long MigrationLockKey = 0x436f6e74726f6c;

    /// <summary>The scripts, by name (e.g. <c>002-orleans-clustering.sql</c>), in the order they are applied.</summary>
    public static IReadOnlyList<(string Name, string Sql)> Scripts { get; } = LoadScripts();

    /// <summary>Applies the scripts the database lacks; returns the names of those it applied.</summary>
    public static async Task<IReadOnlyList<string>> ApplyAsync(string connectionString, CancellationToken cancellationToken = default)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await ExecuteAsync(connection, transaction, $"SELECT pg_advisory_xact_lock({MigrationLockKey})", cancellationToken);
        await ExecuteAsync(
            connection,
            transaction,
            "CREATE TABLE IF NOT EXISTS controlplane_schema (script text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
            cancellationToken);

        var applied = new HashSet<string>(StringComparer.Ordinal);
        await using (var read = new NpgsqlCommand("SELECT script FROM controlplane_schema", connection, transaction))
        await using (var reader = await read.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                applied.Add(reader.GetString(0));
            }
        }

        var added = new List<string>();
        foreach (var (name, sql) in Scripts.Where(script => !applied.Contains(script.Name)))
        {
            await ExecuteAsync(connection, transaction, sql, cancellationToken);
            await using var record = new NpgsqlCommand("INSERT INTO controlplane_schema (script) VALUES (@script)", connection, transaction);
            record.Parameters.AddWithValue("script", name);
            await record.ExecuteNonQueryAsync(cancellationToken);
            added.Add(name);
        }

        // DDL is transactional in PostgreSQL: a script that fails leaves nothing half-applied.
        await transaction.CommitAsync(cancellationToken);
        return added;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static List<(string Name, string Sql)> LoadScripts()
    {
        var assembly = typeof(PostgresSchema).Assembly;
        return [.. assembly.GetManifestResourceNames()
            .Where(name => name.StartsWith(ResourcePrefix, StringComparison.Ordinal) && name.EndsWith(".sql", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .Select(name => (name[ResourcePrefix.Length..], Read(assembly, name)))];
    }

    private static string Read(Assembly assembly, string resourceName)
    {
        using var stream = assembly.GetManifestResourceStream(resourceName)!;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
