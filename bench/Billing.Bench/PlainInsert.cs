using System.Text;
using Billing.Ledger;
using Billing.Storage;
using Billing.Usage;

namespace Billing.Bench;

/// <summary>
/// The baseline: the same rows, the same statements per batch (arrays on PostgreSQL, multi-row VALUES on SQLite), into
/// a table with no unique constraint and no hourly totals. What the ledger costs on top of this is dedupe and roll-up.
/// </summary>
internal static class PlainInsert
{
    public static async Task CreateTableAsync(BillingDatabase database)
    {
        await using var connection = await database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = """
            CREATE TABLE plain_usage (source_event_id TEXT NOT NULL, tenant_id TEXT NOT NULL, instance_id TEXT NOT NULL, meter TEXT NOT NULL,
                quantity BIGINT NOT NULL, occurred_at BIGINT NOT NULL, hour_start BIGINT NOT NULL, corrects TEXT NULL, recorded_at BIGINT NOT NULL)
            """;
        await command.ExecuteNonQueryAsync();
    }

    public static async Task<int> AppendAsync(BillingDatabase database, UsageEvent[] events)
    {
        await using var connection = await database.OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var added = 0;
        foreach (var chunk in events.Chunk(database.IsPostgres ? 10_000 : 500))
        {
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            if (database.IsPostgres)
            {
                command.CommandText = """
                    INSERT INTO plain_usage SELECT *, @now FROM unnest(@ids::text[], @tenants::text[], @instances::text[], @meters::text[],
                        @quantities::bigint[], @occurred::bigint[], @hours::bigint[], @corrects::text[])
                    """;
                BillingDatabase.AddParameter(command, "ids", chunk.Select(e => e.SourceEventId).ToArray());
                BillingDatabase.AddParameter(command, "tenants", chunk.Select(e => e.TenantId).ToArray());
                BillingDatabase.AddParameter(command, "instances", chunk.Select(e => e.InstanceId).ToArray());
                BillingDatabase.AddParameter(command, "meters", chunk.Select(e => e.Meter).ToArray());
                BillingDatabase.AddParameter(command, "quantities", chunk.Select(e => e.Quantity).ToArray());
                BillingDatabase.AddParameter(command, "occurred", chunk.Select(e => e.OccurredAt.ToUnixTimeMilliseconds()).ToArray());
                BillingDatabase.AddParameter(command, "hours", chunk.Select(e => UsageHours.HourStart(e.OccurredAt)).ToArray());
                BillingDatabase.AddParameter(command, "corrects", chunk.Select(e => e.Corrects).ToArray());
            }
            else
            {
                var sql = new StringBuilder("INSERT INTO plain_usage VALUES ");
                for (var i = 0; i < chunk.Length; i++)
                {
                    var e = chunk[i];
                    sql.Append(i == 0 ? "" : ",").Append(System.Globalization.CultureInfo.InvariantCulture, $"(@i{i},@t{i},@n{i},@m{i},@q{i},@o{i},@h{i},@c{i},@now)");
                    BillingDatabase.AddParameter(command, $"i{i}", e.SourceEventId);
                    BillingDatabase.AddParameter(command, $"t{i}", e.TenantId);
                    BillingDatabase.AddParameter(command, $"n{i}", e.InstanceId);
                    BillingDatabase.AddParameter(command, $"m{i}", e.Meter);
                    BillingDatabase.AddParameter(command, $"q{i}", e.Quantity);
                    BillingDatabase.AddParameter(command, $"o{i}", e.OccurredAt.ToUnixTimeMilliseconds());
                    BillingDatabase.AddParameter(command, $"h{i}", UsageHours.HourStart(e.OccurredAt));
                    BillingDatabase.AddParameter(command, $"c{i}", e.Corrects);
                }

                command.CommandText = sql.ToString();
            }

            BillingDatabase.AddParameter(command, "now", now);
            added += await command.ExecuteNonQueryAsync();
        }

        await transaction.CommitAsync();
        return added;
    }
}
