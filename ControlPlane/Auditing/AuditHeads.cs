using System.Globalization;
using System.Text;
using ControlPlane.Hosting;
using ControlPlane.Persistence;
using Microsoft.Extensions.Options;

namespace ControlPlane.Auditing;

/// <summary>The chain's head at a moment: the newest record's id and hash.</summary>
public sealed record AuditHead(long Id, string Hash, DateTimeOffset WrittenAt);

/// <summary>
/// The chain's heads written outside the database: append-only lines <c>id hash time</c> in
/// <c>&lt;dataDir&gt;/audit-heads</c> (each silo its own), and a log line each. Someone who rewrites the whole table,
/// recomputing every hash, cannot rewrite these too, so verification finds the rewrite.
/// </summary>
public sealed partial class AuditHeads(
    Database database, DataDirectory dataDirectory, TimeProvider clock, IOptions<AuditOptions> options, ILogger<AuditHeads> logger)
    : BackgroundService
{
    public const string FileName = "audit-heads";

    private readonly SemaphoreSlim _writing = new(1, 1);
    private long _lastWritten = -1;

    public string FilePath => dataDirectory.File(FileName);

    /// <summary>Writes the current head unless it is the one written last; answers it (null: nothing was ever recorded).</summary>
    public async Task<AuditHead?> PublishAsync(CancellationToken cancellationToken = default)
    {
        await _writing.WaitAsync(cancellationToken);
        try
        {
            await using var connection = await database.OpenAsync(cancellationToken);
            var (id, hash) = await AuditLog.ReadHeadAsync(connection, transaction: null, cancellationToken);
            if (id == 0 || hash is null)
            {
                return null;
            }

            var head = new AuditHead(id, hash, clock.GetUtcNow());
            if (id != _lastWritten)
            {
                await AppendAsync(head, cancellationToken);
                _lastWritten = id;
                LogHead(head.Id, head.Hash);
            }

            return head;
        }
        finally
        {
            _writing.Release();
        }
    }

    /// <summary>Every head written so far, oldest first; a line that does not parse is reported, never skipped silently.</summary>
    public IReadOnlyList<AuditHead> Read(out IReadOnlyList<string> unreadable)
    {
        var heads = new List<AuditHead>();
        var bad = new List<string>();
        unreadable = bad;
        if (!File.Exists(FilePath))
        {
            return heads;
        }

        foreach (var line in File.ReadLines(FilePath).Where(line => line.Length > 0))
        {
            var parts = line.Split(' ');
            if (parts.Length == 3
                && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var id)
                && parts[1].Length == 64
                && DateTimeOffset.TryParse(parts[2], CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var at))
            {
                heads.Add(new AuditHead(id, parts[1], at));
            }
            else
            {
                bad.Add(line);
            }
        }

        return heads;
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Repeating.RunAsync(options.Value.HeadInterval, clock, PublishAsync, LogHeadFailed, stoppingToken);

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try
        {
            // The last head before the process ends, so a rewrite after it is found too.
            await PublishAsync(cancellationToken);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            LogHeadFailed(exception);
        }
    }

    private async Task AppendAsync(AuditHead head, CancellationToken cancellationToken)
    {
        var line = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{head.Id} {head.Hash} {head.WrittenAt:O}\n"));
        await using var file = new FileStream(FilePath, new FileStreamOptions
        {
            Mode = FileMode.Append,
            Access = FileAccess.Write,
            Share = FileShare.Read,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        await file.WriteAsync(line, cancellationToken);
        file.Flush(flushToDisk: true);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Audit chain head {AuditId} {AuditHash}")]
    private partial void LogHead(long auditId, string auditHash);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not write the audit chain's head outside the database")]
    private partial void LogHeadFailed(Exception exception);
}
