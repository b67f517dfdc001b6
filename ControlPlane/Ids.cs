using System.Security.Cryptography;

namespace ControlPlane;

/// <summary>
/// Resource ids: a type prefix and 16 random base-32 characters (80 bits). Lower-case letters, digits and
/// a hyphen, so an id is also a valid DNS label, Kubernetes name and file name.
/// </summary>
public static class Ids
{
    private const string Alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
    private static readonly System.Buffers.SearchValues<char> s_alphabet = System.Buffers.SearchValues.Create(Alphabet);

    public static string NewTenantId() => New("tnt");

    public static string NewInstanceId() => New("ins");

    /// <summary>
    /// An operation of <paramref name="instanceId"/>: <c>op-</c>, the instance's 16 characters, then 16 random ones, so
    /// the tenant finds the instance from the operation id alone and keeps no index of operations.
    /// </summary>
    public static string NewOperationId(string instanceId) => $"op-{instanceId[(instanceId.IndexOf('-') + 1)..]}{New("op")[3..]}";

    /// <summary>An operation id of either form: the one that names its instance, or the earlier 16-character one.</summary>
    public static bool IsOperationId(string? id) => IsWellFormed(id, "op", 32) || IsWellFormed(id, "op");

    /// <summary>The instance an operation id names; null for the earlier form, which names none.</summary>
    public static string? InstanceOfOperation(string operationId) =>
        IsWellFormed(operationId, "op", 32) ? $"ins-{operationId.AsSpan(3, 16)}" : null;

    public static string NewMaintenanceWindowId() => New("mw");

    public static string NewUserId() => New("usr");

    /// <summary>True when <paramref name="id"/> could have come from <see cref="New"/> with <paramref name="prefix"/>.</summary>
    public static bool IsWellFormed(string? id, string prefix, int length = 16) =>
        id is not null
        && id.Length == prefix.Length + 1 + length
        && id.StartsWith(prefix + "-", StringComparison.Ordinal)
        && id.AsSpan(prefix.Length + 1).IndexOfAnyExcept(s_alphabet) < 0;

    private static string New(string prefix)
    {
        Span<byte> bytes = stackalloc byte[16];
        RandomNumberGenerator.Fill(bytes);
        Span<char> chars = stackalloc char[16];
        for (var i = 0; i < chars.Length; i++)
        {
            chars[i] = Alphabet[bytes[i] & 31];
        }

        return $"{prefix}-{chars}";
    }
}
