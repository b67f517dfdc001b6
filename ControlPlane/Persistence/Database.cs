using System.Data.Common;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;

namespace ControlPlane.Persistence;

/// <summary>Which database holds the state every part of the control plane keeps.</summary>
public enum DatabaseProvider
{
    /// <summary>Embedded mode: one SQLite file in the data directory, one process.</summary>
    Sqlite,

    /// <summary>Cluster mode: PostgreSQL, shared by every silo.</summary>
    Postgres,
}

/// <summary>
/// The one database of the control plane and of billing: grain state, reminders (embedded), API keys, the audit log,
/// the usage ledger, the Stripe outbox, SLA minutes. Embedded it is one SQLite file (WAL, <c>synchronous=FULL</c>: every
/// acknowledged write survives a crash of the process or the machine); in cluster mode it is PostgreSQL. Callers write
/// one SQL text for both, with <c>@name</c> parameters, which both providers accept; where the dialects differ,
/// <see cref="IsPostgres"/> says which to use. Its schema is the <see cref="Migration"/>s the features register.
/// </summary>
public sealed class Database
{
    private readonly string _connectionString;
    private readonly NpgsqlDataSource? _postgres;
    private readonly int _busyTimeoutMs;

    private Database(DatabaseProvider provider, string connectionString, NpgsqlDataSource? postgres, string filePath, DatabaseOptions options)
    {
        Provider = provider;
        _connectionString = connectionString;
        _postgres = postgres;
        FilePath = filePath;
        _busyTimeoutMs = (int)options.BusyTimeout.TotalMilliseconds;
    }

    public DatabaseProvider Provider { get; }

    public bool IsPostgres => Provider == DatabaseProvider.Postgres;

    /// <summary>Several control-plane processes share this database (cluster mode).</summary>
    public bool IsShared => IsPostgres;

    /// <summary>The SQLite file; empty for PostgreSQL.</summary>
    public string FilePath { get; }

    /// <summary>
    /// The SQLite file at <paramref name="filePath"/>, created private to this user (0600) from its first byte when it
    /// does not exist, in WAL mode.
    /// </summary>
    public static Database Sqlite(string filePath, DatabaseOptions? options = null)
    {
        filePath = Path.GetFullPath(filePath);
        if (!File.Exists(filePath))
        {
            using (new FileStream(filePath, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            }))
            {
            }
        }

        var connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = filePath,
            Mode = SqliteOpenMode.ReadWrite,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
        }.ToString();
        using (var connection = new SqliteConnection(connectionString))
        {
            connection.Open();
            using var wal = connection.CreateCommand();
            wal.CommandText = "PRAGMA journal_mode = WAL;";
            wal.ExecuteNonQuery();
        }

        return new Database(DatabaseProvider.Sqlite, connectionString, null, filePath, options ?? new DatabaseOptions());
    }

    /// <summary>PostgreSQL at <paramref name="connectionString"/>; nothing is opened until the first use.</summary>
    public static Database Postgres(string connectionString, DatabaseOptions? options = null) =>
        new(DatabaseProvider.Postgres, connectionString, NpgsqlDataSource.Create(connectionString), "", options ?? new DatabaseOptions());

    /// <summary>The connection string, for the Orleans ADO.NET providers in cluster mode.</summary>
    public string ConnectionString => _connectionString;

    /// <summary>Opens a pooled connection with the per-connection settings every caller relies on.</summary>
    public async Task<DbConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
        if (_postgres is not null)
        {
            return await _postgres.OpenConnectionAsync(cancellationToken);
        }

        var connection = new SqliteConnection(_connectionString) { DefaultTimeout = (int)Math.Ceiling(_busyTimeoutMs / 1000.0) };
        try
        {
            await connection.OpenAsync(cancellationToken);
            await using var pragmas = connection.CreateCommand();
            // One busy timeout for every writer of the file: a write that cannot get the lock in time fails, and the
            // caller answers 503 rather than holding a grain's turn for longer.
            // secure_delete: a secret replaced (a password sealed, rotated) is overwritten in the file, not left in a free page.
            pragmas.CommandText = $"PRAGMA synchronous = FULL; PRAGMA busy_timeout = {_busyTimeoutMs}; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;";
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
    /// sharing the database: a PostgreSQL advisory lock; a SQLite write transaction already holds the only write lock.
    /// </summary>
    public async Task LockAsync(DbTransaction transaction, string name, CancellationToken cancellationToken = default)
    {
        if (IsPostgres)
        {
            await using var command = transaction.Connection!.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = "SELECT pg_advisory_xact_lock(hashtext(@name))";
            AddParameter(command, "name", name);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    /// <summary>Runs one statement on a connection of its own; answers the rows it changed.</summary>
    public async Task<int> ExecuteAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Runs one query on a connection of its own and reads every row with <paramref name="read"/>.</summary>
    public async Task<List<T>> QueryAsync<T>(
        string sql, Func<DbDataReader, T> read, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<T>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(read(reader));
        }

        return rows;
    }

    /// <summary>An untyped value; <c>null</c> becomes SQL NULL, whose type PostgreSQL takes from its column.</summary>
    public static void AddParameter(DbCommand command, string name, object? value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value ?? DBNull.Value;
        command.Parameters.Add(parameter);
    }

    /// <summary>A point in time: <c>timestamptz</c> in PostgreSQL, ISO 8601 text in SQLite.</summary>
    public void AddTimestamp(DbCommand command, string name, DateTimeOffset value) => AddParameter(command, name, Timestamp(value));

    /// <summary>A point in time as a parameter value of this dialect, for <see cref="ExecuteAsync"/> and <see cref="QueryAsync"/>.</summary>
    public object Timestamp(DateTimeOffset value) => IsPostgres ? value.ToUniversalTime() : value.ToString("O", CultureInfo.InvariantCulture);

    /// <summary>A JSON document: <c>jsonb</c> in PostgreSQL (queryable with <c>-&gt;&gt;</c>), text in SQLite.</summary>
    public void AddJson(DbCommand command, string name, string json)
    {
        if (IsPostgres)
        {
            command.Parameters.Add(new NpgsqlParameter(name, NpgsqlDbType.Jsonb) { Value = json });
        }
        else
        {
            AddParameter(command, name, json);
        }
    }

    /// <summary>Reads what <see cref="AddTimestamp"/> wrote, in either dialect.</summary>
    public static DateTimeOffset ReadTimestamp(DbDataReader reader, int ordinal) =>
        reader.GetFieldType(ordinal) == typeof(string)
            ? DateTimeOffset.Parse(reader.GetString(ordinal), CultureInfo.InvariantCulture)
            : reader.GetFieldValue<DateTimeOffset>(ordinal);

    private static DbCommand Command(DbConnection connection, string sql, (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            AddParameter(command, name, value);
        }

        return command;
    }
}

/// <summary>Section <c>ControlPlane:Database</c>.</summary>
public sealed class DatabaseOptions
{
    public const string SectionName = "ControlPlane:Database";

    /// <summary>
    /// How long a SQLite write waits for another writer before it fails (and the API answers 503 with Retry-After).
    /// One value for every part of the control plane that shares the file.
    /// </summary>
    public TimeSpan BusyTimeout { get; set; } = TimeSpan.FromSeconds(10);
}
