using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ControlPlane.Persistence;

namespace ControlPlane.Auditing;

public enum AuditRowKind
{
    /// <summary>Complete when written: a refusal, a system action.</summary>
    Event,

    /// <summary>A mutation or a secret read about to happen; its <see cref="Outcome"/> row follows.</summary>
    Intent,

    /// <summary>How an intent ended.</summary>
    Outcome,
}

/// <summary>One stored row of <c>audit_events</c>, as the chain hashes it.</summary>
public sealed record AuditRow(
    long Id, DateTimeOffset OccurredAt, AuditRowKind Kind, long? IntentId, AuditEntry Entry, int? FormatVersion, string? PrevHash, string? Hash);

/// <summary>
/// The hash chain: each row's hash is SHA-256 over a canonical, versioned serialization of the row that ends with the
/// previous row's hash. The id is part of it, so a row moved to another position (two rows' contents swapped) breaks,
/// as does an edited field; a removed row breaks the link of the row after it.
/// </summary>
public static class AuditChain
{
    /// <summary>The canonical serialization's version; a row records the one it was hashed with.</summary>
    public const int FormatVersion = 1;

    /// <summary>The previous hash of the first row ever written.</summary>
    public static readonly string Genesis = new('0', 64);

    /// <summary>A time as the chain keeps it: UTC, whole microseconds (PostgreSQL's precision), so it reads back identical.</summary>
    public static DateTimeOffset Canonical(DateTimeOffset at)
    {
        var utc = at.ToUniversalTime();
        return new DateTimeOffset(utc.UtcTicks - utc.UtcTicks % 10, TimeSpan.Zero);
    }

    public static string Hash(AuditRow row) => Convert.ToHexStringLower(SHA256.HashData(Serialize(row)));

    /// <summary>
    /// Version 1: every field as <c>length:value</c> (UTF-8 byte length) or <c>~</c> for null, separated by <c>|</c>, in a
    /// fixed order. Length prefixes make it unambiguous whatever a field contains; nothing depends on a JSON encoder.
    /// </summary>
    public static byte[] Serialize(AuditRow row)
    {
        if (row.FormatVersion != FormatVersion)
        {
            throw new NotSupportedException($"Audit record {row.Id} has canonical format version {row.FormatVersion}; this version reads {FormatVersion}.");
        }

        var entry = row.Entry;
        string?[] fields =
        [
            "audit/v1",
            row.Id.ToString(CultureInfo.InvariantCulture),
            Canonical(row.OccurredAt).ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture),
            AuditRows.KindName(row.Kind),
            row.IntentId?.ToString(CultureInfo.InvariantCulture),
            entry.Actor,
            entry.TenantId,
            entry.Action,
            entry.Target,
            entry.Outcome,
            entry.Details,
            entry.Before,
            entry.After,
            entry.ClientAddress,
            entry.UserAgent,
            entry.RequestId,
            row.PrevHash,
        ];
        var text = new StringBuilder();
        foreach (var field in fields)
        {
            text.Append(field is null ? "~" : string.Create(CultureInfo.InvariantCulture, $"{Encoding.UTF8.GetByteCount(field)}:{field}")).Append('|');
        }

        return Encoding.UTF8.GetBytes(text.ToString());
    }
}

/// <summary>Reads stored rows, whole, in either dialect.</summary>
public static class AuditRows
{
    public const string Columns =
        "id, occurred_at, kind, intent_id, actor, tenant_id, action, target, outcome, details, before_state, after_state, client_address, user_agent, request_id, format_version, prev_hash, hash";

    public static string KindName(AuditRowKind kind) => kind switch
    {
        AuditRowKind.Intent => "intent",
        AuditRowKind.Outcome => "outcome",
        _ => "event",
    };

    public static AuditRowKind ParseKind(string kind) => kind switch
    {
        "intent" => AuditRowKind.Intent,
        "outcome" => AuditRowKind.Outcome,
        _ => AuditRowKind.Event,
    };

    /// <summary>A row of <see cref="Columns"/>, in that order.</summary>
    public static AuditRow Read(DbDataReader reader) => new(
        reader.GetInt64(0),
        Database.ReadTimestamp(reader, 1),
        ParseKind(reader.GetString(2)),
        reader.IsDBNull(3) ? null : reader.GetInt64(3),
        new AuditEntry(reader.GetString(4), Text(reader, 5), reader.GetString(6), Text(reader, 7), reader.GetString(8), Text(reader, 9))
        {
            Before = Text(reader, 10),
            After = Text(reader, 11),
            ClientAddress = Text(reader, 12),
            UserAgent = Text(reader, 13),
            RequestId = Text(reader, 14),
        },
        reader.IsDBNull(15) ? null : Convert.ToInt32(reader.GetValue(15), CultureInfo.InvariantCulture),
        Text(reader, 16),
        Text(reader, 17));

    public static async Task<List<AuditRow>> ReadAsync(
        DbConnection connection, DbTransaction? transaction, string where, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"SELECT {Columns} FROM audit_events {where}";
        foreach (var (name, value) in parameters)
        {
            Database.AddParameter(command, name, value);
        }

        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<AuditRow>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(Read(reader));
        }

        return rows;
    }

    private static string? Text(DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);
}
