using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace ControlPlane.Secrets;

/// <summary>
/// The key-encryption keys (KEKs) that wrap every stored secret's own data key, by version. The highest version wraps
/// new secrets; every version present still unwraps the secrets it wrapped. Rotating is adding a higher version (and
/// keeping the older ones until every secret has been re-wrapped).
/// </summary>
/// <remarks>
/// Written as text, the same in the embedded key file and in a secret store's value: tokens <c>v&lt;n&gt;:&lt;base64 of 32
/// bytes&gt;</c> separated by white space or commas, e.g. <c>v1:3q2+7w…= v2:Zm9v…=</c>.
/// </remarks>
public sealed class SecretKeySet
{
    public const int KeyBytes = 32;

    private readonly SortedDictionary<int, byte[]> _keys;

    private SecretKeySet(SortedDictionary<int, byte[]> keys) => _keys = keys;

    /// <summary>The version that wraps new secrets: the highest.</summary>
    public int CurrentVersion => _keys.Keys.Max();

    public IReadOnlyCollection<int> Versions => _keys.Keys;

    public byte[] Current => _keys[CurrentVersion];

    public bool TryGet(int version, out byte[] key) => _keys.TryGetValue(version, out key!);

    /// <summary>A set of one new random key, version 1.</summary>
    public static SecretKeySet CreateNew() => new(new SortedDictionary<int, byte[]> { [1] = RandomNumberGenerator.GetBytes(KeyBytes) });

    /// <summary>This set with a new random key one version above the current one.</summary>
    public SecretKeySet WithNewVersion() => new(new SortedDictionary<int, byte[]>(_keys) { [CurrentVersion + 1] = RandomNumberGenerator.GetBytes(KeyBytes) });

    /// <exception cref="FormatException">The text is not a key set; the message says what is wrong, never a key.</exception>
    public static SecretKeySet Parse(string text)
    {
        var keys = new SortedDictionary<int, byte[]>();
        foreach (var token in text.Split([' ', '\t', '\r', '\n', ','], StringSplitOptions.RemoveEmptyEntries))
        {
            var colon = token.IndexOf(':', StringComparison.Ordinal);
            if (colon < 2 || token[0] != 'v'
                || !int.TryParse(token.AsSpan(1, colon - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var version) || version < 1)
            {
                throw new FormatException("Each key must read v<version>:<base64 of 32 bytes>, e.g. v1:… (a version from 1 up).");
            }

            var buffer = new byte[64];
            if (!Convert.TryFromBase64String(token[(colon + 1)..], buffer, out var written) || written != KeyBytes)
            {
                throw new FormatException($"Key v{version} is not base64 of exactly {KeyBytes} bytes (make one with `openssl rand -base64 32`).");
            }

            if (!keys.TryAdd(version, buffer[..KeyBytes]))
            {
                throw new FormatException($"Key version v{version} appears twice.");
            }
        }

        return keys.Count == 0
            ? throw new FormatException("It holds no key; add one as v1:<base64 of 32 bytes> (make one with `openssl rand -base64 32`).")
            : new SecretKeySet(keys);
    }

    public string Format()
    {
        var text = new StringBuilder();
        foreach (var (version, key) in _keys)
        {
            text.Append(CultureInfo.InvariantCulture, $"v{version}:{Convert.ToBase64String(key)}\n");
        }

        return text.ToString();
    }
}
