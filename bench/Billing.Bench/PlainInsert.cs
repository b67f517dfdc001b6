using Billing.Ledger;
using Billing.Usage;
using ControlPlane.Persistence;

namespace Billing.Bench;

/// <summary>
/// The baseline: the same rows, the same statements per batch (arrays on PostgreSQL, multi-row VALUES on SQLite), into
/// a table with no unique constraint and no hourly totals. What the ledger costs on top of this is dedupe and roll-up.
/// </summary>
internal static class PlainInsert
{
    public static async Task CreateTableAsync(Database database)
    {
        await using var connection = await database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = """
            CREATE TABLE plain_usage (source_event_id TEXT NOT NULL, tenant_id TEXT NOT NULL, instance_id TEXT NOT NULL, meter TEXT NOT NULL,
                quantity BIGINT NOT NULL, occurred_at BIGINT NOT NULL, hour_start BIGINT NOT NULL, corrects TEXT NULL, recorded_at BIGINT NOT NULL)
            """;
        await command.ExecuteNonQueryAsync();
    }

    public static async Task<int> AppendAsync(Database database, UsageEvent[] events)
    {
        await using var connection = await database.OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var added = 0;
        foreach (var chunk in events.Chunk(database.IsPostgres ? 10_000 : UsageLedger.SqliteChunk))
        {
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            if (database.IsPostgres)
            {
                command.CommandText = """
                    INSERT INTO plain_usage SELECT *, @now FROM unnest(@ids::text[], @tenants::text[], @instances::text[], @meters::text[],
                        @quantities::bigint[], @occurred::bigint[], @hours::bigint[], @corrects::text[])
                    """;
                UsageLedger.BindArrays(command, chunk);
            }
            else
            {
                command.CommandText = "INSERT INTO plain_usage VALUES " + UsageLedger.BindValues(command, chunk);
            }

            Database.AddParameter(command, "now", now);
            added += await command.ExecuteNonQueryAsync();
        }

        await transaction.CommitAsync();
        return added;
    }
}
