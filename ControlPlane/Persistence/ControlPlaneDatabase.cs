using Microsoft.Data.Sqlite;

namespace ControlPlane.Persistence;

/// <summary>
/// The single SQLite file that holds every piece of embedded-mode state: grain state, reminders, API keys
/// and the audit log. WAL with <c>synchronous=FULL</c> makes every acknowledged write survive a crash
/// of the process or the machine.
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

    public ControlPlaneDatabase(string dataDirectory)
    {
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

    public string DataDirectory { get; }

    public string FilePath { get; }

    /// <summary>Opens a pooled connection with the per-connection settings every caller relies on.</summary>
    public async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
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
