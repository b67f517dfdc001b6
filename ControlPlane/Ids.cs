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

    public static string NewOperationId() => New("op");

    public static string NewMaintenanceWindowId() => New("mw");

    /// <summary>True when <paramref name="id"/> could have come from <see cref="New"/> with <paramref name="prefix"/>.</summary>
    public static bool IsWellFormed(string? id, string prefix) =>
        id is not null
        && id.Length == prefix.Length + 17
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
