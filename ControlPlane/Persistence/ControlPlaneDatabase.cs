using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;

namespace ControlPlane.Persistence;

/// <summary>Which database holds the state that the control plane's silos share.</summary>
public enum DatabaseProvider
{
    /// <summary>Embedded mode: one SQLite file in the data directory, one process.</summary>
    Sqlite,

    /// <summary>Cluster mode: PostgreSQL, shared by every silo.</summary>
    Postgres,
}

/// <summary>
/// The database that holds grain state, API keys and the audit log (and, embedded, reminders). Embedded, it is one
/// SQLite file in the data directory: WAL with <c>synchronous=FULL</c> makes every acknowledged write survive a crash
/// of the process or the machine. In cluster mode it is PostgreSQL (schema in <c>Postgres/*.sql</c>). The stores
/// use one SQL text for both, with <c>@name</c> parameters, which both providers accept.
/// </summary>
public sealed class ControlPlaneDatabase
{
    private const string FileName = "controlplane.db";

    // Each entry is applied once, in order, and recorded in schema_migrations. Never edit a shipped entry: append.
    private static readonly string[] s_migrations =
    [
        """
        CREATE TABLE grain_state (
            state_name TEXT NOT NULL,
            grain_id   TEXT NOT NULL,
            etag       INTEGER NOT NULL,
            payload    TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (state_name, grain_id)
        ) WITHOUT ROWID;

        CREATE TABLE reminders (
            grain_id      TEXT NOT NULL,
            reminder_name TEXT NOT NULL,
            grain_hash    INTEGER NOT NULL,
            start_at      TEXT NOT NULL,
            period_ms     INTEGER NOT NULL,
            etag          TEXT NOT NULL,
            PRIMARY KEY (grain_id, reminder_name)
        ) WITHOUT ROWID;
        CREATE INDEX reminders_by_hash ON reminders (grain_hash);

        CREATE TABLE api_keys (
            id          TEXT PRIMARY KEY,
            name        TEXT NOT NULL,
            secret_hash TEXT NOT NULL UNIQUE,
            role        TEXT NOT NULL,
            tenant_id   TEXT NULL,
            created_at  TEXT NOT NULL,
            revoked_at  TEXT NULL
        );

        CREATE TABLE audit_events (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            occurred_at TEXT NOT NULL,
            actor       TEXT NOT NULL,
            tenant_id   TEXT NULL,
            action      TEXT NOT NULL,
            target      TEXT NULL,
            outcome     TEXT NOT NULL,
            details     TEXT NULL
        );
        CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, id);
        """,
    ];

    private readonly string _connectionString;
    private readonly NpgsqlDataSource? _postgres;

    /// <summary>Embedded mode: the SQLite file in <paramref name="dataDirectory"/>, created and migrated here.</summary>
    public ControlPlaneDatabase(string dataDirectory)
    {
        Provider = DatabaseProvider.Sqlite;
        DataDirectory = Path.GetFullPath(dataDirectory);
        FilePath = Path.Combine(DataDirectory, FileName);
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = FilePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        Initialize();
    }

    private ControlPlaneDatabase(string dataDirectory, NpgsqlDataSource postgres)
    {
        Provider = DatabaseProvider.Postgres;
        DataDirectory = Path.GetFullPath(dataDirectory);
        FilePath = "";
        _connectionString = postgres.ConnectionString;
        _postgres = postgres;
    }

    public DatabaseProvider Provider { get; }

    /// <summary>Several control-plane processes share this database (cluster mode).</summary>
    public bool IsShared => Provider == DatabaseProvider.Postgres;

    /// <summary>This process's own directory (hosted instances' data, the admin key it created, its lock).</summary>
    public string DataDirectory { get; }

    /// <summary>The SQLite file; empty in cluster mode.</summary>
    public string FilePath { get; }

    /// <summary>
    /// Cluster mode: PostgreSQL at <paramref name="connectionString"/>, its schema brought up to date first (safe when
    /// several silos start at once). <paramref name="dataDirectory"/> stays this process's own.
    /// </summary>
    public static async Task<ControlPlaneDatabase> OpenPostgresAsync(string dataDirectory, string connectionString, CancellationToken cancellationToken = default)
    {
        await PostgresSchema.ApplyAsync(connectionString, cancellationToken);
        return new ControlPlaneDatabase(dataDirectory, NpgsqlDataSource.Create(connectionString));
    }

    /// <summary>Opens a pooled connection with the per-connection settings every caller relies on.</summary>
    public async Task<DbConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
        if (_postgres is not null)
        {
            return await _postgres.OpenConnectionAsync(cancellationToken);
        }

        var connection = new SqliteConnection(_connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            await using var pragmas = connection.CreateCommand();
            pragmas.CommandText = "PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;";
            await pragmas.ExecuteNonQueryAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Serializes writers of <paramref name="name"/> until <paramref name="transaction"/> ends, across every process
    /// sharing the database: a PostgreSQL advisory lock; a SQLite transaction already holds the only write lock.
    /// </summary>
    public async Task LockAsync(DbTransaction transaction, string name, CancellationToken cancellationToken = default)
    {
        if (Provider == DatabaseProvider.Postgres)
        {
            await using var command = transaction.Connection!.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = "SELECT pg_advisory_xact_lock(hashtext(@name))";
            AddParameter(command, "name", name);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    public static void AddParameter(DbCommand command, string name, object? value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value ?? DBNull.Value;
        command.Parameters.Add(parameter);
    }

    /// <summary>A point in time: <c>timestamptz</c> in PostgreSQL, ISO 8601 text in SQLite (as embedded files always held).</summary>
    public void AddTimestamp(DbCommand command, string name, DateTimeOffset value) =>
        AddParameter(command, name, Provider == DatabaseProvider.Postgres ? value.ToUniversalTime() : value.ToString("O"));

    /// <summary>A JSON document: <c>jsonb</c> in PostgreSQL (queryable with <c>-&gt;&gt;</c>), text in SQLite.</summary>
    public void AddJson(DbCommand command, string name, string json)
    {
        if (Provider == DatabaseProvider.Postgres)
        {
            command.Parameters.Add(new NpgsqlParameter(name, NpgsqlDbType.Jsonb) { Value = json });
        }
        else
        {
            AddParameter(command, name, json);
        }
    }

    public static DateTimeOffset ReadTimestamp(DbDataReader reader, int ordinal) =>
        reader.GetFieldType(ordinal) == typeof(string)
            ? DateTimeOffset.Parse(reader.GetString(ordinal), System.Globalization.CultureInfo.InvariantCulture)
            : reader.GetFieldValue<DateTimeOffset>(ordinal);

    private void Initialize()
    {
        Directory.CreateDirectory(DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        if (!File.Exists(FilePath))
        {
            // Created here, not by SQLite, so the file is private to this user from its first byte.
            using (File.Create(FilePath, 0, FileOptions.None))
            {
            }

            File.SetUnixFileMode(FilePath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        using var connection = new SqliteConnection(_connectionString);
        connection.Open();
        Execute(connection, "PRAGMA journal_mode = WAL;");
        Execute(connection, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);");

        using var transaction = connection.BeginTransaction();
        using var current = connection.CreateCommand();
        current.Transaction = transaction;
        current.CommandText = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations;";
        var applied = Convert.ToInt32(current.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        for (var version = applied + 1; version <= s_migrations.Length; version++)
        {
            using var migrate = connection.CreateCommand();
            migrate.Transaction = transaction;
            migrate.CommandText = s_migrations[version - 1];
            migrate.ExecuteNonQuery();

            using var record = connection.CreateCommand();
            record.Transaction = transaction;
            record.CommandText = "INSERT INTO schema_migrations (version, applied_at) VALUES ($version, $at);";
            record.Parameters.AddWithValue("$version", version);
            record.Parameters.AddWithValue("$at", DateTimeOffset.UtcNow.ToString("O"));
            record.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
