using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Billing.Storage;

public enum BillingDatabaseProvider
{
    /// <summary>Embedded mode: the control plane's SQLite file.</summary>
    Sqlite,
    /// <summary>Cluster mode: PostgreSQL shared by every silo.</summary>
    Postgres,
}

/// <summary>
/// A schema change of one billing feature, in both dialects. Applied once, in <see cref="Id"/> order, and recorded in
/// <c>billing_migrations</c>; never edit a shipped one: add another.
/// </summary>
public sealed record BillingMigration(string Id, string Sqlite, string Postgres);

/// <summary>
/// Where billing keeps its rows: the same code on SQLite (embedded) and PostgreSQL (cluster). Features register their
/// <see cref="BillingMigration"/>s; <see cref="MigrateAsync"/> applies the missing ones at start-up.
/// </summary>
public sealed class BillingDatabase(BillingDatabaseProvider provider, string connectionString)
{
    public BillingDatabaseProvider Provider { get; } = provider;

    public bool IsPostgres => Provider == BillingDatabaseProvider.Postgres;

    public async Task<DbConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
        DbConnection connection = IsPostgres ? new NpgsqlConnection(connectionString) : new SqliteConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        if (!IsPostgres)
        {
            await using var pragmas = connection.CreateCommand();
            // Other writers (the silo's grain storage) share the file: wait for them rather than fail.
            pragmas.CommandText = "PRAGMA busy_timeout = 30000; PRAGMA synchronous = FULL;";
            await pragmas.ExecuteNonQueryAsync(cancellationToken);
        }

        return connection;
    }

    public async Task MigrateAsync(IEnumerable<BillingMigration> migrations, CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await ExecuteAsync(connection, null, "CREATE TABLE IF NOT EXISTS billing_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)", cancellationToken);
        foreach (var migration in migrations.OrderBy(m => m.Id, StringComparer.Ordinal))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            if (IsPostgres)
            {
                // Silos start together: one applies each migration, the others wait and then see it applied.
                await ExecuteAsync(connection, transaction, "LOCK TABLE billing_migrations IN EXCLUSIVE MODE", cancellationToken);
            }

            await using var seen = connection.CreateCommand();
            seen.Transaction = transaction;
            seen.CommandText = "SELECT COUNT(*) FROM billing_migrations WHERE id = @id";
            AddParameter(seen, "id", migration.Id);
            if (Convert.ToInt64(await seen.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture) == 0)
            {
                await ExecuteAsync(connection, transaction, IsPostgres ? migration.Postgres : migration.Sqlite, cancellationToken);
                await using var record = connection.CreateCommand();
                record.Transaction = transaction;
                record.CommandText = "INSERT INTO billing_migrations (id, applied_at) VALUES (@id, @at)";
                AddParameter(record, "id", migration.Id);
                AddParameter(record, "at", DateTimeOffset.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
                await record.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
        }
    }

    public static void AddParameter(DbCommand command, string name, object? value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        // An untyped NULL: PostgreSQL takes the type from the column it is inserted into or compared with.
        parameter.Value = value ?? DBNull.Value;
        command.Parameters.Add(parameter);
    }

    private static async Task ExecuteAsync(DbConnection connection, DbTransaction? transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
