using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Orleans.Storage;

namespace ControlPlane.Persistence;

/// <summary>
/// Orleans grain storage in the control plane's database: SQLite embedded, PostgreSQL in cluster mode, with the same
/// SQL. State is stored as JSON so an SRE can read it (<c>sqlite3</c>, <c>psql</c>); the ETag is a row version that
/// turns a lost race (e.g. two activations of one grain while a dead silo is being declared dead) into
/// <see cref="InconsistentStateException"/> instead of a silent overwrite.
/// </summary>
public sealed class JsonGrainStorage(Database database) : IGrainStorage
{
    internal static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.General)
    {
        Converters = { new JsonStringEnumConverter() },
        WriteIndented = false,
    };

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        await using var connection = await database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT etag, payload FROM grain_state WHERE state_name = @name AND grain_id = @id;";
        Database.AddParameter(command, "name", stateName);
        Database.AddParameter(command, "id", grainId.ToString());
        await using var reader = await command.ExecuteReaderAsync();
        if (!await reader.ReadAsync())
        {
            grainState.State = Activator.CreateInstance<T>();
            grainState.ETag = null;
            grainState.RecordExists = false;
            return;
        }

        grainState.ETag = reader.GetInt64(0).ToString(CultureInfo.InvariantCulture);
        grainState.State = JsonSerializer.Deserialize<T>(reader.GetString(1), JsonOptions) ?? Activator.CreateInstance<T>();
        grainState.RecordExists = true;
    }

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var payload = JsonSerializer.Serialize(grainState.State, JsonOptions);
        await using var connection = await database.OpenAsync();
        await using var command = connection.CreateCommand();
        Database.AddParameter(command, "name", stateName);
        Database.AddParameter(command, "id", grainId.ToString());
        database.AddJson(command, "payload", payload);
        database.AddTimestamp(command, "at", DateTimeOffset.UtcNow);

        long newEtag;
        if (grainState.ETag is null)
        {
            command.CommandText = """
                INSERT INTO grain_state (state_name, grain_id, etag, payload, updated_at)
                VALUES (@name, @id, 1, @payload, @at)
                ON CONFLICT (state_name, grain_id) DO NOTHING;
                """;
            newEtag = 1;
        }
        else
        {
            var expected = long.Parse(grainState.ETag, CultureInfo.InvariantCulture);
            command.CommandText = """
                UPDATE grain_state SET etag = etag + 1, payload = @payload, updated_at = @at
                WHERE state_name = @name AND grain_id = @id AND etag = @etag;
                """;
            Database.AddParameter(command, "etag", expected);
            newEtag = expected + 1;
        }

        if (await command.ExecuteNonQueryAsync() != 1)
        {
            throw new InconsistentStateException(
                $"State '{stateName}' of {grainId} was changed by another writer (expected ETag '{grainState.ETag ?? "none"}').");
        }

        grainState.ETag = newEtag.ToString(CultureInfo.InvariantCulture);
        grainState.RecordExists = true;
    }

    public async Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        if (grainState.ETag is not null)
        {
            await using var connection = await database.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "DELETE FROM grain_state WHERE state_name = @name AND grain_id = @id AND etag = @etag;";
            Database.AddParameter(command, "name", stateName);
            Database.AddParameter(command, "id", grainId.ToString());
            Database.AddParameter(command, "etag", long.Parse(grainState.ETag, CultureInfo.InvariantCulture));
            if (await command.ExecuteNonQueryAsync() != 1)
            {
                throw new InconsistentStateException($"State '{stateName}' of {grainId} was changed by another writer.");
            }
        }

        grainState.State = Activator.CreateInstance<T>();
        grainState.ETag = null;
        grainState.RecordExists = false;
    }
}
