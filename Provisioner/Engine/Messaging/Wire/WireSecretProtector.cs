using System.Security.Cryptography;
using System.Text;

namespace Provisioner.Messaging.Wire;

/// <summary>
/// Encrypts the credentials that ride inside provisioning commands (AES-256-GCM), so that a broker, its
/// disk, its replicas and anyone who can read a topic never see an instance's password. The control plane
/// and the provisioner get the same key, from configuration or from a Dapr secret store.
/// </summary>
/// <remarks>
/// A protected value reads <c>v1.&lt;key id&gt;.&lt;nonce&gt;.&lt;ciphertext and tag&gt;</c> (base64url). The key id is the
/// first bytes of the key's SHA-256, so a provisioner holding another key says so instead of a vague failure.
/// This side holds one current key, which it writes with, and may accept others while keys rotate
/// (<see cref="UseKeys"/>); <see cref="WireAuthenticator"/> derives the message authenticator's keys from the same ring.
/// </remarks>
public sealed class WireSecretProtector
{
    public const int KeyBytes = 32;
    private const int NonceBytes = 12;
    private const int TagBytes = 16;
    private const string Version = "v1";

    private volatile KeyRing? _keys;

    public bool HasKey => _keys is not null;

    /// <summary>Which key this side writes with, for messages; never the key itself.</summary>
    public string? KeyId => _keys?.Current.Id;

    public void UseKey(byte[] key) => UseKeys(key, []);

    /// <summary>Writes with <paramref name="current"/>; reads what <paramref name="current"/> or any of <paramref name="accepted"/> wrote.</summary>
    public void UseKeys(byte[] current, IReadOnlyList<byte[]> accepted)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(accepted);
        var keys = new[] { current }.Concat(accepted).Select(Material).ToList();
        _keys = new KeyRing(keys[0], keys.DistinctBy(key => key.Id).ToDictionary(key => key.Id, StringComparer.Ordinal));
    }

    internal KeyMaterial CurrentKey => _keys?.Current ?? throw new InvalidOperationException("No provisioning secret key is loaded yet.");

    /// <summary>The key a message names, if this side holds it.</summary>
    /// <param name="madeWith">What was done with the key, for the message: "The instance password was encrypted".</param>
    /// <exception cref="WireFormatException">No key is loaded, or not that one.</exception>
    internal KeyMaterial KeyNamed(string keyId, string madeWith)
    {
        var keys = _keys ?? throw new WireFormatException("This side has no provisioning secret key loaded, so it cannot read the message.");
        return keys.ById.TryGetValue(keyId, out var key)
            ? key
            : throw new WireFormatException(
                $"{madeWith} with key {keyId}, but this side holds key {keys.Current.Id}" +
                (keys.ById.Count > 1 ? $" (and accepts {string.Join(", ", keys.ById.Keys.Where(id => id != keys.Current.Id))})" : "") +
                ": give the control plane and the provisioner the same Provisioning:Dapr secret key.",
                reason: WireRefusal.Authenticator);
    }

    public string Protect(string plaintext)
    {
        var key = CurrentKey;
        var nonce = RandomNumberGenerator.GetBytes(NonceBytes);
        var plain = Encoding.UTF8.GetBytes(plaintext);
        var sealedBytes = new byte[plain.Length + TagBytes];
        using (var aes = new AesGcm(key.Bytes, TagBytes))
        {
            aes.Encrypt(nonce, plain, sealedBytes.AsSpan(0, plain.Length), sealedBytes.AsSpan(plain.Length), AssociatedData(key.Id));
        }

        return string.Join('.', Version, key.Id, Base64Url(nonce), Base64Url(sealedBytes));
    }

    /// <exception cref="WireFormatException">The value is not one this side can open, with the reason.</exception>
    public string Unprotect(string protectedValue)
    {
        var parts = protectedValue.Split('.');
        if (parts.Length != 4 || parts[0] != Version)
        {
            throw new WireFormatException("The instance password is not an encrypted value of format v1 (was it sent in plaintext?).");
        }

        var key = KeyNamed(parts[1], "The instance password was encrypted");

        try
        {
            var nonce = FromBase64Url(parts[2]);
            var sealedBytes = FromBase64Url(parts[3]);
            if (nonce.Length != NonceBytes || sealedBytes.Length < TagBytes)
            {
                throw new WireFormatException("The encrypted instance password is truncated.");
            }

            var plain = new byte[sealedBytes.Length - TagBytes];
            using var aes = new AesGcm(key.Bytes, TagBytes);
            aes.Decrypt(nonce, sealedBytes.AsSpan(0, plain.Length), sealedBytes.AsSpan(plain.Length), plain, AssociatedData(key.Id));
            return Encoding.UTF8.GetString(plain);
        }
        catch (Exception exception) when (exception is FormatException or AuthenticationTagMismatchException)
        {
            throw new WireFormatException("The encrypted instance password was altered or damaged in transit (its authentication tag does not match).", exception);
        }
    }

    private static byte[] AssociatedData(string keyId) => Encoding.ASCII.GetBytes($"{Version}.{keyId}");

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static byte[] FromBase64Url(string text)
    {
        var padded = text.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(padded.PadRight(padded.Length + ((4 - (padded.Length % 4)) % 4), '='));
    }

    private static KeyMaterial Material(byte[] key)
    {
        if (key.Length != KeyBytes)
        {
            throw new ArgumentException($"The provisioning secret key must be {KeyBytes} bytes (base64 of 32 random bytes); it is {key.Length}.", nameof(key));
        }

        return new KeyMaterial(key.ToArray(), Convert.ToHexStringLower(SHA256.HashData(key).AsSpan(0, 4)));
    }

    internal sealed record KeyMaterial(byte[] Bytes, string Id);

    private sealed record KeyRing(KeyMaterial Current, IReadOnlyDictionary<string, KeyMaterial> ById);
}
