using Microsoft.Data.Sqlite;

namespace ControlPlane.Tests.Support;

/// <summary>Another connection holding SQLite's write lock (<c>BEGIN IMMEDIATE</c>), as a second writer would.</summary>
public sealed class SqliteWriteLock : IDisposable
{
    private readonly SqliteConnection _connection;

    private SqliteWriteLock(SqliteConnection connection) => _connection = connection;

    public static async Task<SqliteWriteLock> TakeAsync(string file)
    {
        var connection = new SqliteConnection($"Data Source={file};Pooling=False");
        await connection.OpenAsync();
        await using var begin = connection.CreateCommand();
        begin.CommandText = "BEGIN IMMEDIATE;";
        await begin.ExecuteNonQueryAsync();
        return new SqliteWriteLock(connection);
    }

    public void Dispose() => _connection.Dispose();
}
