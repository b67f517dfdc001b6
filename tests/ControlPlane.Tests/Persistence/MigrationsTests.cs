using ControlPlane.Persistence;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using TestServers;

namespace ControlPlane.Tests.Persistence;

/// <summary>The one migration mechanism every part of the control plane (grain storage, keys, audit, billing) uses.</summary>
public sealed class MigrationsTests : IDisposable
{
    private readonly TestDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task The_host_migrates_control_plane_and_billing_tables_into_one_file_with_one_record_each()
    {
        await using var factory = new ControlPlaneFactory();
        _ = factory.CreateAdminApi();
        var registered = factory.Services.GetServices<Migration>().Select(migration => migration.Id).Order(StringComparer.Ordinal).ToList();

        var database = Database.Sqlite(Path.Combine(factory.DataDirectory.Path, "controlplane.db"));
        var tables = await database.QueryAsync("SELECT name FROM sqlite_master WHERE type = 'table'", reader => reader.GetString(0), default);
        var applied = await database.QueryAsync("SELECT id FROM applied_migrations ORDER BY id", reader => reader.GetString(0), default);

        Assert.Equal(TestSchema.All.Select(migration => migration.Id).Order(StringComparer.Ordinal), registered);
        Assert.Equal(registered.Where(id => TestSchema.All.Single(m => m.Id == id).Sqlite is not null), applied);
        Assert.Contains("grain_state", tables);
        Assert.Contains("usage_ledger", tables);
        Assert.Contains("audit_events", tables);
        Assert.DoesNotContain("billing_migrations", tables);
    }

    [Fact]
    public async Task A_file_prepared_by_the_three_earlier_mechanisms_is_adopted_and_nothing_runs_twice()
    {
        var database = Database.Sqlite(Path.Combine(_directory.Path, "legacy.db"));
        var ledger = TestSchema.All.Single(migration => migration.Id == "0100-ledger");
        await database.ExecuteAsync(
            """
            CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);
            INSERT INTO schema_migrations VALUES (1, '2026-01-01T00:00:00Z');
            CREATE TABLE grain_state (state_name TEXT NOT NULL, grain_id TEXT NOT NULL, etag INTEGER NOT NULL, payload TEXT NOT NULL,
                updated_at TEXT NOT NULL, PRIMARY KEY (state_name, grain_id)) WITHOUT ROWID;
            INSERT INTO grain_state VALUES ('tenant', 'tenant/tnt-kept', 3, '{}', '2026-01-01T00:00:00Z');
            CREATE TABLE billing_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL);
            INSERT INTO billing_migrations VALUES ('0100-ledger', '2026-01-01T00:00:00Z');
            """,
            default);
        await database.ExecuteAsync(ledger.Sqlite!, default);
        // Version 1 of the earliest mechanism made the API-key table too; later migrations (0030, 0031) change it.
        await database.ExecuteAsync(TestSchema.All.Single(migration => migration.Id == "0010-api-keys").Sqlite!, default);

        var applied = await Migrations.ApplyAsync(database, TestSchema.All);

        Assert.DoesNotContain("0100-ledger", applied);
        Assert.DoesNotContain("0001-grain-state", applied);
        Assert.DoesNotContain("0010-api-keys", applied);
        Assert.Contains("0200-stripe", applied);
        Assert.Equal([3L], await database.QueryAsync("SELECT etag FROM grain_state", reader => reader.GetInt64(0), default));
        var legacy = await database.QueryAsync(
            "SELECT name FROM sqlite_master WHERE name IN ('schema_migrations', 'billing_migrations')", reader => reader.GetString(0), default);
        Assert.Empty(legacy);
        Assert.Empty(await Migrations.ApplyAsync(database, TestSchema.All));
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task A_migration_that_fails_leaves_nothing_half_applied(DatabaseProvider provider)
    {
        var database = provider == DatabaseProvider.Postgres
            ? Database.Postgres(await PostgresServer.CreateDatabaseAsync("migrations"))
            : Database.Sqlite(Path.Combine(_directory.Path, "failing.db"));
        Migration[] migrations =
        [
            Migration.Portable("0001-first", "CREATE TABLE first_table (id INTEGER PRIMARY KEY)"),
            Migration.Portable("0002-broken", "CREATE TABLE second_table (id INTEGER PRIMARY KEY); THIS IS NOT SQL"),
        ];

        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => Migrations.ApplyAsync(database, migrations));

        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => database.ExecuteAsync("SELECT count(*) FROM first_table", default));
        // Nothing of the failed run was recorded: the first migration runs again, as the only one.
        Assert.Equal(["0001-first"], await Migrations.ApplyAsync(database, migrations[..1]));
    }
}
