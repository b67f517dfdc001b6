using System.Data.Common;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ControlPlane.Persistence;

/// <summary>
/// Brings a database up to the schema the registered <see cref="Migration"/>s describe: the ones not yet recorded in
/// <c>applied_migrations</c> run in id order, in one transaction, under a lock (a PostgreSQL advisory lock; SQLite's
/// write lock), so silos that start together apply each once and the others find them applied.
/// </summary>
public static class Migrations
{
    // Any fixed number: every process that migrates takes this lock first.
    private const long LockKey = 0x436f6e74726f6c;

    private const string ResourcePrefix = "ControlPlane.Persistence.Postgres.";

    /// <summary>
    /// The records of the three mechanisms this one replaced, and the ids they become: the control plane's SQLite
    /// <c>schema_migrations</c> (version 1), its PostgreSQL <c>controlplane_schema</c> (scripts), billing's
    /// <c>billing_migrations</c> (same ids). A database they prepared is adopted, never migrated twice.
    /// </summary>
    private static readonly Dictionary<string, string[]> s_legacyIds = new(StringComparer.Ordinal)
    {
        ["1"] = [GrainStateId, SqliteRemindersId, "0010-api-keys", "0020-audit-events"],
        ["001-orleans-queries.sql"] = [OrleansQueriesId],
        ["002-orleans-clustering.sql"] = [OrleansClusteringId],
        ["003-orleans-reminders.sql"] = [OrleansRemindersId],
        ["004-controlplane.sql"] = [GrainStateId, "0010-api-keys", "0020-audit-events"],
    };

    private const string GrainStateId = "0001-grain-state";
    private const string SqliteRemindersId = "0002-sqlite-reminders";
    private const string OrleansQueriesId = "0003-orleans-queries";
    private const string OrleansClusteringId = "0004-orleans-clustering";
    private const string OrleansRemindersId = "0005-orleans-reminders";

    /// <summary>
    /// The persistence layer's own schema: grain state (both dialects), the embedded reminder table, and on PostgreSQL
    /// the Orleans ADO.NET providers' tables and stored queries (their packages ship no scripts; these are ours).
    /// </summary>
    public static IReadOnlyList<Migration> Storage { get; } =
    [
        new(
            GrainStateId,
            """
            CREATE TABLE IF NOT EXISTS grain_state (
                state_name TEXT NOT NULL,
                grain_id   TEXT NOT NULL,
                etag       INTEGER NOT NULL,
                payload    TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (state_name, grain_id)
            ) WITHOUT ROWID;
            """,
            """
            -- Grain state is JSON (jsonb) so an SRE can read it, e.g.
            --   SELECT payload->>'Lifecycle' FROM grain_state WHERE grain_id = 'instance/ins-…';
            CREATE TABLE IF NOT EXISTS grain_state (
                state_name text        NOT NULL,
                grain_id   text        NOT NULL,
                etag       bigint      NOT NULL,
                payload    jsonb       NOT NULL,
                updated_at timestamptz NOT NULL,
                PRIMARY KEY (state_name, grain_id)
            );
            """),
        new(
            SqliteRemindersId,
            """
            CREATE TABLE IF NOT EXISTS reminders (
                grain_id      TEXT NOT NULL,
                reminder_name TEXT NOT NULL,
                grain_hash    INTEGER NOT NULL,
                start_at      TEXT NOT NULL,
                period_ms     INTEGER NOT NULL,
                etag          TEXT NOT NULL,
                PRIMARY KEY (grain_id, reminder_name)
            ) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS reminders_by_hash ON reminders (grain_hash);
            """,
            Postgres: null),
        new(OrleansQueriesId, Sqlite: null, Script("001-orleans-queries.sql")),
        new(OrleansClusteringId, Sqlite: null, Script("002-orleans-clustering.sql")),
        new(OrleansRemindersId, Sqlite: null, Script("003-orleans-reminders.sql")),
    ];

    /// <summary>Registers migrations that <see cref="ApplyAsync"/> applies at start-up with every other registered one.</summary>
    public static IServiceCollection AddMigrations(this IServiceCollection services, IEnumerable<Migration> migrations)
    {
        foreach (var migration in migrations)
        {
            services.AddSingleton(migration);
        }

        return services;
    }

    /// <summary>Applies every migration registered with <see cref="AddMigrations"/> before anything else starts.</summary>
    public static IServiceCollection AddDatabaseMigrator(this IServiceCollection services)
    {
        services.AddHostedService<DatabaseMigrator>();
        return services;
    }

    /// <summary>Applies the migrations the database lacks; answers the ids of those it applied.</summary>
    public static async Task<IReadOnlyList<string>> ApplyAsync(Database database, IEnumerable<Migration> migrations, CancellationToken cancellationToken = default)
    {
        var ordered = migrations
            .Where(migration => migration.SqlFor(database.Provider) is not null)
            .DistinctBy(migration => migration.Id)
            .OrderBy(migration => migration.Id, StringComparer.Ordinal)
            .ToList();
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = connection is SqliteConnection sqlite
            ? sqlite.BeginTransaction(deferred: false)
            : await connection.BeginTransactionAsync(cancellationToken);
        if (database.IsPostgres)
        {
            await ExecuteAsync(transaction, $"SELECT pg_advisory_xact_lock({LockKey})", cancellationToken);
        }

        await ExecuteAsync(transaction, "CREATE TABLE IF NOT EXISTS applied_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)", cancellationToken);
        var applied = await ReadAppliedAsync(transaction, cancellationToken);
        await AdoptLegacyRecordsAsync(database, transaction, applied, cancellationToken);

        var added = new List<string>();
        foreach (var migration in ordered.Where(migration => !applied.Contains(migration.Id)))
        {
            await ExecuteAsync(transaction, migration.SqlFor(database.Provider)!, cancellationToken);
            await RecordAsync(transaction, migration.Id, cancellationToken);
            added.Add(migration.Id);
        }

        // DDL is transactional in both dialects: a migration that fails leaves nothing half-applied.
        await transaction.CommitAsync(cancellationToken);
        return added;
    }

    private static async Task AdoptLegacyRecordsAsync(Database database, DbTransaction transaction, HashSet<string> applied, CancellationToken cancellationToken)
    {
        (string Table, string Query)[] legacy = database.IsPostgres
            ? [("controlplane_schema", "SELECT script FROM controlplane_schema"), ("billing_migrations", "SELECT id FROM billing_migrations")]
            : [("schema_migrations", "SELECT CAST(version AS TEXT) FROM schema_migrations"), ("billing_migrations", "SELECT id FROM billing_migrations")];
        foreach (var (table, query) in legacy)
        {
            if (!await TableExistsAsync(database, transaction, table, cancellationToken))
            {
                continue;
            }

            foreach (var record in await ReadStringsAsync(transaction, query, cancellationToken))
            {
                foreach (var id in s_legacyIds.GetValueOrDefault(record, [record]).Where(applied.Add))
                {
                    await RecordAsync(transaction, id, cancellationToken);
                }
            }

            await ExecuteAsync(transaction, $"DROP TABLE {table}", cancellationToken);
        }
    }

    private static async Task<bool> TableExistsAsync(Database database, DbTransaction transaction, string table, CancellationToken cancellationToken)
    {
        var sql = database.IsPostgres
            ? "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = @name"
            : "SELECT name FROM sqlite_master WHERE type = 'table' AND name = @name";
        await using var command = transaction.Connection!.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        Database.AddParameter(command, "name", table);
        return await command.ExecuteScalarAsync(cancellationToken) is not null;
    }

    private static async Task<HashSet<string>> ReadAppliedAsync(DbTransaction transaction, CancellationToken cancellationToken) =>
        new(await ReadStringsAsync(transaction, "SELECT id FROM applied_migrations", cancellationToken), StringComparer.Ordinal);

    private static async Task<List<string>> ReadStringsAsync(DbTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = transaction.Connection!.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var values = new List<string>();
        while (await reader.ReadAsync(cancellationToken))
        {
            values.Add(reader.GetString(0));
        }

        return values;
    }

    private static async Task RecordAsync(DbTransaction transaction, string id, CancellationToken cancellationToken)
    {
        await using var command = transaction.Connection!.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "INSERT INTO applied_migrations (id, applied_at) VALUES (@id, @at)";
        Database.AddParameter(command, "id", id);
        Database.AddParameter(command, "at", DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task ExecuteAsync(DbTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = transaction.Connection!.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static string Script(string name)
    {
        var assembly = typeof(Migrations).Assembly;
        using var stream = assembly.GetManifestResourceStream(ResourcePrefix + name)
            ?? throw new InvalidOperationException($"The embedded script {name} is missing from {assembly.GetName().Name}.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}

/// <summary>Applies every registered <see cref="Migration"/> at start-up, before the silo or any worker touches a table.</summary>
public sealed class DatabaseMigrator(Database database, IEnumerable<Migration> migrations) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Migrations.ApplyAsync(database, migrations, cancellationToken);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            throw new DatabaseMigrationException(
                $"Could not bring the {database.Provider} database's schema up to date (nothing was changed): {exception.Message}", exception);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>The schema could not be brought up to date at start-up; the message says why, for the person starting it.</summary>
public sealed class DatabaseMigrationException(string message, Exception inner) : Exception(message, inner);
