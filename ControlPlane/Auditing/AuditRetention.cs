using System.Globalization;
using System.Text.Json;
using ControlPlane.Hosting;
using ControlPlane.Persistence;
using Microsoft.Extensions.Options;

namespace ControlPlane.Auditing;

/// <summary>What one retention pass archived: records <see cref="FirstId"/> to <see cref="LastId"/> into <see cref="File"/>.</summary>
public sealed record AuditArchive(long FirstId, long LastId, int Records, string File);

/// <summary>
/// Keeps <see cref="AuditOptions.RetentionDays"/> of records in the database. Older ones, always a prefix of the chain,
/// are written whole (hashes included) to a JSON-lines file in the archive directory and flushed to disk before they
/// are deleted, in one transaction under the chain's lock with a checkpoint (the last archived id and hash) from which
/// the remaining chain still verifies. A prefix that does not verify is never archived: the evidence stays where it is.
/// </summary>
public sealed partial class AuditRetention(
    Database database, AuditLog audit, DataDirectory dataDirectory, TimeProvider clock, IOptions<AuditOptions> options, ILogger<AuditRetention> logger)
    : BackgroundService
{
    public string ArchiveDirectory => Path.GetFullPath(options.Value.ArchiveDirectory, dataDirectory.Path);

    /// <summary>Archives the records older than the retention; null when none are.</summary>
    public async Task<AuditArchive?> ArchiveAsync(CancellationToken cancellationToken = default)
    {
        var cutoff = clock.GetUtcNow() - TimeSpan.FromDays(options.Value.RetentionDays);
        AuditArchive archive;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await database.LockAsync(transaction, AuditLog.ChainLock, cancellationToken);
            // The prefix of the chain older than the cutoff: up to the first record that is not.
            var kept = await AuditRows.ReadAsync(connection, transaction, "WHERE occurred_at >= @cutoff ORDER BY id LIMIT 1", cancellationToken, ("cutoff", Timestamp(cutoff)));
            var old = kept.Count == 0
                ? await AuditRows.ReadAsync(connection, transaction, "ORDER BY id", cancellationToken)
                : await AuditRows.ReadAsync(connection, transaction, "WHERE id < @first ORDER BY id", cancellationToken, ("first", kept[0].Id));
            if (old.Count == 0)
            {
                return null;
            }

            var checkpoint = await AuditLog.ReadCheckpointAsync(connection, transaction, cancellationToken);
            var (previousId, previousHash) = checkpoint is null ? (0L, AuditChain.Genesis) : (checkpoint.LastId, checkpoint.LastHash);
            foreach (var row in old)
            {
                if (AuditVerifier.Check(row, previousId, previousHash) is { } broken)
                {
                    LogRefused(broken.Id, broken.Detail);
                    return null;
                }

                (previousId, previousHash) = (row.Id, row.Hash!);
            }

            var last = old[^1];
            archive = new AuditArchive(old[0].Id, last.Id, old.Count, Path.Combine(ArchiveDirectory, string.Create(CultureInfo.InvariantCulture, $"audit-{old[0].Id:D12}-{last.Id:D12}.jsonl")));
            await WriteAsync(archive.File, old, cancellationToken);
            await using (var command = connection.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText = """
                    INSERT INTO audit_checkpoints (last_id, last_hash, archived_at, archive_file) VALUES (@id, @hash, @at, @file);
                    DELETE FROM audit_events WHERE id <= @id;
                    """;
                Database.AddParameter(command, "id", last.Id);
                Database.AddParameter(command, "hash", last.Hash);
                database.AddTimestamp(command, "at", clock.GetUtcNow());
                Database.AddParameter(command, "file", Path.GetFileName(archive.File));
                await command.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        LogArchived(archive.Records, archive.FirstId, archive.LastId, archive.File);
        await audit.RecordAsync(
            new AuditEntry("system", null, "audit.archive", Path.GetFileName(archive.File), "succeeded", $"records {archive.FirstId} to {archive.LastId} older than {cutoff:O}"),
            cancellationToken);
        return archive;
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Repeating.RunAsync(options.Value.ArchiveInterval, clock, ArchiveAsync, LogFailed, stoppingToken);

    private object Timestamp(DateTimeOffset at) =>
        database.IsPostgres ? at.ToUniversalTime() : at.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture);

    private static async Task WriteAsync(string path, IReadOnlyList<AuditRow> rows, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        await Provisioner.Local.ExclusiveFile.ReplaceAsync(path, async file =>
        {
            await using var writer = new StreamWriter(file, leaveOpen: true) { NewLine = "\n" };
            foreach (var row in rows)
            {
                await writer.WriteLineAsync(JsonSerializer.Serialize(ArchivedRow.Of(row), AuditJson.Options).AsMemory(), cancellationToken);
            }

            await writer.FlushAsync(cancellationToken);
        });
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Archived {Records} audit record(s), {FirstId} to {LastId}, to {File}")]
    private partial void LogArchived(int records, long firstId, long lastId, string file);

    [LoggerMessage(Level = LogLevel.Error, Message = "Audit retention did not archive: record {AuditId} does not verify ({Problem}); nothing was removed")]
    private partial void LogRefused(long auditId, string problem);

    [LoggerMessage(Level = LogLevel.Error, Message = "Audit retention failed; nothing was removed")]
    private partial void LogFailed(Exception exception);
}

/// <summary>A row as archives keep it: every stored field, hashes included, so an archive verifies on its own.</summary>
public sealed record ArchivedRow(
    long Id, DateTimeOffset OccurredAt, string Kind, long? IntentId, string Actor, string? TenantId, string Action, string? Target, string Outcome,
    string? Details, string? Before, string? After, string? ClientAddress, string? UserAgent, string? RequestId, int? FormatVersion, string? PrevHash, string? Hash)
{
    public static ArchivedRow Of(AuditRow row) => new(
        row.Id, row.OccurredAt, AuditRows.KindName(row.Kind), row.IntentId, row.Entry.Actor, row.Entry.TenantId, row.Entry.Action, row.Entry.Target,
        row.Entry.Outcome, row.Entry.Details, row.Entry.Before, row.Entry.After, row.Entry.ClientAddress, row.Entry.UserAgent, row.Entry.RequestId,
        row.FormatVersion, row.PrevHash, row.Hash);
}
