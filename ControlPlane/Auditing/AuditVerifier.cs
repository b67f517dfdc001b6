using System.Globalization;
using ControlPlane.Persistence;

namespace ControlPlane.Auditing;

/// <summary>Where the chain first breaks: the record, a stable <see cref="Problem"/> slug, and what is wrong, for a person.</summary>
public sealed record AuditBrokenLink(long Id, string Problem, string Detail);

/// <summary>
/// What verification found. <see cref="Intact"/>: every record from the checkpoint (or the first) to the last hashes
/// right and links to the one before, and every head written outside the database matches the table.
/// </summary>
public sealed record AuditVerification(
    bool Intact, long Records, long? FirstId, long? LastId, AuditCheckpoint? Checkpoint, int HeadsChecked, AuditBrokenLink? BrokenLink);

/// <summary>Walks the chain from the last archive checkpoint (or the genesis), then checks the heads kept outside the database.</summary>
public sealed class AuditVerifier(Database database, AuditHeads heads)
{
    public async Task<AuditVerification> VerifyAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var checkpoint = await AuditLog.ReadCheckpointAsync(connection, transaction: null, cancellationToken);
        var written = heads.Read(out var unreadable);
        var wanted = written.Select(head => head.Id).ToHashSet();
        var stored = new Dictionary<long, string?>();

        var (previousId, previousHash) = checkpoint is null ? (0L, AuditChain.Genesis) : (checkpoint.LastId, checkpoint.LastHash);
        AuditBrokenLink? broken = null;
        long records = 0;
        long? firstId = null;
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = $"SELECT {AuditRows.Columns} FROM audit_events ORDER BY id";
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var row = AuditRows.Read(reader);
                records++;
                firstId ??= row.Id;
                if (wanted.Contains(row.Id))
                {
                    stored[row.Id] = row.Hash;
                }

                broken ??= Check(row, previousId, previousHash);
                (previousId, previousHash) = (row.Id, row.Hash ?? "");
            }
        }

        var lastId = records == 0 ? (long?)null : previousId;
        var headBreak = CheckHeads(written, unreadable, stored, checkpoint, lastId);
        var first = new[] { broken, headBreak }.OfType<AuditBrokenLink>().MinBy(link => link.Id);
        return new AuditVerification(first is null, records, firstId, lastId, checkpoint, written.Count, first);
    }

    /// <summary>The problem with <paramref name="row"/>, given the record before it; null when it is sound.</summary>
    public static AuditBrokenLink? Check(AuditRow row, long previousId, string previousHash)
    {
        if (row.Hash is null)
        {
            return new(row.Id, "unsealed", $"Record {row.Id} has no hash inside the chain: it was added or altered outside the audit log.");
        }

        if (row.FormatVersion != AuditChain.FormatVersion)
        {
            return new(row.Id, "unknown-format", $"Record {row.Id} claims canonical format {row.FormatVersion?.ToString(CultureInfo.InvariantCulture) ?? "none"}; this version knows {AuditChain.FormatVersion}.");
        }

        if (AuditChain.Hash(row) != row.Hash)
        {
            return new(row.Id, "hash-mismatch", $"Record {row.Id}'s contents do not match its hash: a field was altered, or the record was moved from another position.");
        }

        if (row.PrevHash == previousHash)
        {
            return null;
        }

        return row.Id > previousId + 1
            ? new(row.Id, "records-missing", $"Record {row.Id} does not link to record {previousId}: record(s) {previousId + 1} to {row.Id - 1} were removed.")
            : new(row.Id, "link-broken", $"Record {row.Id} does not link to record {previousId}: that record was altered, replaced or moved.");
    }

    private static AuditBrokenLink? CheckHeads(
        IReadOnlyList<AuditHead> written, IReadOnlyList<string> unreadable, Dictionary<long, string?> stored, AuditCheckpoint? checkpoint, long? lastId)
    {
        if (unreadable.Count > 0)
        {
            return new(0, "heads-unreadable", $"{unreadable.Count} line(s) of the heads file do not read as 'id hash time'; the file was altered.");
        }

        foreach (var head in written.OrderBy(head => head.Id))
        {
            if (checkpoint is not null && head.Id <= checkpoint.LastId)
            {
                if (head.Id == checkpoint.LastId && head.Hash != checkpoint.LastHash)
                {
                    return new(head.Id, "checkpoint-mismatch", $"The archive checkpoint's hash of record {head.Id} differs from the head written at {head.WrittenAt:O}.");
                }

                continue;
            }

            if (lastId is null || head.Id > lastId)
            {
                var missing = (lastId ?? checkpoint?.LastId ?? 0) + 1;
                return new(missing, "records-missing", $"Record {head.Id} was the head at {head.WrittenAt:O}, but the log ends before it: record(s) from {missing} on were removed.");
            }

            if (!stored.TryGetValue(head.Id, out var hash) || hash != head.Hash)
            {
                return new(head.Id, "head-mismatch", $"Record {head.Id}'s hash differs from the head written outside the database at {head.WrittenAt:O}: the chain up to it was rewritten.");
            }
        }

        return null;
    }
}
