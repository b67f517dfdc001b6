using System.Globalization;

namespace ControlPlane.Persistence;

/// <summary>
/// Orleans reminders in the control plane's SQLite file, so the reconcile loop of every instance comes
/// back after a restart. Orleans calls this table from the silo; grains never touch it directly.
/// </summary>
public sealed class SqliteReminderTable(Database database) : IReminderTable
{
    public Task Init() => Task.CompletedTask;

    public Task<ReminderTableData> ReadRows(GrainId grainId) =>
        QueryAsync("WHERE grain_id = $id", command => Database.AddParameter(command, "$id", grainId.ToString()));

    public Task<ReminderTableData> ReadRows(uint begin, uint end) =>
        // Orleans asks for the ring range (begin, end]; when begin >= end the range wraps around zero.
        QueryAsync(
            begin < end ? "WHERE grain_hash > $begin AND grain_hash <= $end" : "WHERE grain_hash > $begin OR grain_hash <= $end",
            command =>
            {
                Database.AddParameter(command, "$begin", (long)begin);
                Database.AddParameter(command, "$end", (long)end);
            });

    public async Task<ReminderEntry?> ReadRow(GrainId grainId, string reminderName)
    {
        var rows = await QueryAsync(
            "WHERE grain_id = $id AND reminder_name = $name",
            command =>
            {
                Database.AddParameter(command, "$id", grainId.ToString());
                Database.AddParameter(command, "$name", reminderName);
            });
        return rows.Reminders.FirstOrDefault();
    }

    public async Task<string?> UpsertRow(ReminderEntry entry)
    {
        var etag = Guid.NewGuid().ToString("N");
        await using var connection = await database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO reminders (grain_id, reminder_name, grain_hash, start_at, period_ms, etag)
            VALUES ($id, $name, $hash, $start, $period, $etag)
            ON CONFLICT (grain_id, reminder_name) DO UPDATE
            SET start_at = excluded.start_at, period_ms = excluded.period_ms, etag = excluded.etag;
            """;
        Database.AddParameter(command, "$id", entry.GrainId.ToString());
        Database.AddParameter(command, "$name", entry.ReminderName);
        Database.AddParameter(command, "$hash", (long)entry.GrainId.GetUniformHashCode());
        Database.AddParameter(command, "$start", entry.StartAt.ToUniversalTime().ToString("O"));
        Database.AddParameter(command, "$period", (long)entry.Period.TotalMilliseconds);
        Database.AddParameter(command, "$etag", etag);
        await command.ExecuteNonQueryAsync();
        return etag;
    }

    public async Task<bool> RemoveRow(GrainId grainId, string reminderName, string eTag)
    {
        await using var connection = await database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM reminders WHERE grain_id = $id AND reminder_name = $name AND etag = $etag;";
        Database.AddParameter(command, "$id", grainId.ToString());
        Database.AddParameter(command, "$name", reminderName);
        Database.AddParameter(command, "$etag", eTag);
        return await command.ExecuteNonQueryAsync() == 1;
    }

    public async Task TestOnlyClearTable()
    {
        await using var connection = await database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM reminders;";
        await command.ExecuteNonQueryAsync();
    }

    private async Task<ReminderTableData> QueryAsync(string where, Action<System.Data.Common.DbCommand> bind)
    {
        await using var connection = await database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT grain_id, reminder_name, start_at, period_ms, etag FROM reminders {where};";
        bind(command);
        await using var reader = await command.ExecuteReaderAsync();
        var entries = new List<ReminderEntry>();
        while (await reader.ReadAsync())
        {
            entries.Add(new ReminderEntry
            {
                GrainId = GrainId.Parse(reader.GetString(0)),
                ReminderName = reader.GetString(1),
                StartAt = DateTime.Parse(reader.GetString(2), CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal),
                Period = TimeSpan.FromMilliseconds(reader.GetInt64(3)),
                ETag = reader.GetString(4),
            });
        }

        return new ReminderTableData(entries);
    }
}
