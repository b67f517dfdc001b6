using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace ControlPlane.Secrets;

/// <summary>A stored secret cannot be opened: its key version is gone from the key set, or it was altered.</summary>
public sealed class SecretUnreadableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Envelope encryption of the secrets the control plane stores (instance passwords): each secret gets its own random
/// data key (AES-256-GCM), and that data key is wrapped by the current key-encryption key of the <see cref="SecretKeySet"/>,
/// whose version is written beside it. Rotating the key-encryption key re-wraps only the data keys
/// (<see cref="RewrapAsync"/>); old versions keep opening what they wrapped until then.
/// </summary>
/// <remarks>
/// A sealed secret reads <c>env1.&lt;key version&gt;.&lt;wrapped data key&gt;.&lt;nonce&gt;.&lt;ciphertext and tag&gt;</c> (base64url).
/// Both encryptions are bound to a context (e.g. the instance id and which secret it is), so a sealed value copied
/// into another instance's state does not open there.
/// </remarks>
public sealed class SecretEnvelopes(ISecretKeySource keys) : IDisposable
{
    private const string Format = "env1";
    private const int NonceBytes = 12;
    private const int TagBytes = 16;

    private readonly SemaphoreSlim _loading = new(1, 1);
    private volatile SecretKeySet? _keySet;

    /// <summary>The key version new secrets are wrapped with (loads the key set).</summary>
    public async Task<int> CurrentVersionAsync() => (await KeySetAsync()).CurrentVersion;

    public async Task<string> SealAsync(string plaintext, string context)
    {
        var keySet = await KeySetAsync();
        var dataKey = RandomNumberGenerator.GetBytes(SecretKeySet.KeyBytes);
        try
        {
            var version = keySet.CurrentVersion;
            var nonce = RandomNumberGenerator.GetBytes(NonceBytes);
            var ciphertext = Encrypt(dataKey, nonce, Encoding.UTF8.GetBytes(plaintext), DataContext(context));
            return string.Join('.', Format, version.ToString(CultureInfo.InvariantCulture), Wrap(keySet.Current, version, dataKey, context), Base64Url(nonce), Base64Url(ciphertext));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <exception cref="SecretUnreadableException">The key that wrapped it is not in the key set, or the value was altered.</exception>
    public async Task<string> OpenAsync(string sealedValue, string context)
    {
        var envelope = Envelope.Parse(sealedValue);
        var dataKey = Unwrap(await KeySetAsync(), envelope, context);
        try
        {
            return Encoding.UTF8.GetString(Decrypt(dataKey, envelope.Nonce, envelope.Ciphertext, DataContext(context)));
        }
        catch (AuthenticationTagMismatchException exception)
        {
            throw new SecretUnreadableException($"The stored {context} was altered or belongs elsewhere (its authentication tag does not match).", exception);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <summary>The same secret with its data key wrapped by the current key version; null when it already is.</summary>
    public async Task<string?> RewrapAsync(string sealedValue, string context)
    {
        var keySet = await KeySetAsync();
        var envelope = Envelope.Parse(sealedValue);
        if (envelope.Version == keySet.CurrentVersion)
        {
            return null;
        }

        var dataKey = Unwrap(keySet, envelope, context);
        try
        {
            var version = keySet.CurrentVersion;
            return string.Join('.', Format, version.ToString(CultureInfo.InvariantCulture), Wrap(keySet.Current, version, dataKey, context), Base64Url(envelope.Nonce), Base64Url(envelope.Ciphertext));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey);
        }
    }

    /// <summary>The key version a sealed value was wrapped with.</summary>
    public static int KeyVersionOf(string sealedValue) => Envelope.Parse(sealedValue).Version;

    /// <summary>Whether a stored value is a sealed secret at all (state written before encryption holds plaintext).</summary>
    public static bool IsSealed(string? value) => value is not null && value.StartsWith(Format + ".", StringComparison.Ordinal);

    public void Dispose() => _loading.Dispose();

    private async Task<SecretKeySet> KeySetAsync()
    {
        if (_keySet is { } loaded)
        {
            return loaded;
        }

        await _loading.WaitAsync();
        try
        {
            return _keySet ??= await keys.ReadAsync(CancellationToken.None);
        }
        finally
        {
            _loading.Release();
        }
    }

    private static string Wrap(byte[] keyEncryptionKey, int version, byte[] dataKey, string context)
    {
        var nonce = RandomNumberGenerator.GetBytes(NonceBytes);
        return Base64Url([.. nonce, .. Encrypt(keyEncryptionKey, nonce, dataKey, WrapContext(version, context))]);
    }

    private static byte[] Unwrap(SecretKeySet keySet, Envelope envelope, string context)
    {
        if (!keySet.TryGet(envelope.Version, out var keyEncryptionKey))
        {
            throw new SecretUnreadableException(
                $"The stored {context} is wrapped with key version v{envelope.Version}, which the key set no longer holds (it has " +
                $"{string.Join(", ", keySet.Versions.Select(v => $"v{v}"))}). Put v{envelope.Version} back: keep old versions until every secret has been re-wrapped.");
        }

        try
        {
            return Decrypt(keyEncryptionKey, envelope.WrappedKey[..NonceBytes], envelope.WrappedKey[NonceBytes..], WrapContext(envelope.Version, context));
        }
        catch (Exception exception) when (exception is AuthenticationTagMismatchException or ArgumentException)
        {
            throw new SecretUnreadableException($"The data key of the stored {context} does not open with key version v{envelope.Version}: the key was replaced, or the value altered.", exception);
        }
    }

    private static byte[] Encrypt(byte[] key, byte[] nonce, byte[] plaintext, byte[] associatedData)
    {
        var sealedBytes = new byte[plaintext.Length + TagBytes];
        using var aes = new AesGcm(key, TagBytes);
        aes.Encrypt(nonce, plaintext, sealedBytes.AsSpan(0, plaintext.Length), sealedBytes.AsSpan(plaintext.Length), associatedData);
        return sealedBytes;
    }

    private static byte[] Decrypt(byte[] key, byte[] nonce, byte[] sealedBytes, byte[] associatedData)
    {
        if (sealedBytes.Length < TagBytes)
        {
            throw new AuthenticationTagMismatchException();
        }

        var plaintext = new byte[sealedBytes.Length - TagBytes];
        using var aes = new AesGcm(key, TagBytes);
        aes.Decrypt(nonce, sealedBytes.AsSpan(0, plaintext.Length), sealedBytes.AsSpan(plaintext.Length), plaintext, associatedData);
        return plaintext;
    }

    private static byte[] WrapContext(int version, string context) => Encoding.UTF8.GetBytes($"{Format}.key.v{version.ToString(CultureInfo.InvariantCulture)}.{context}");

    private static byte[] DataContext(string context) => Encoding.UTF8.GetBytes($"{Format}.data.{context}");

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static byte[] FromBase64Url(string text)
    {
        var padded = text.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(padded.PadRight(padded.Length + ((4 - (padded.Length % 4)) % 4), '='));
    }

    private sealed record Envelope(int Version, byte[] WrappedKey, byte[] Nonce, byte[] Ciphertext)
    {
        public static Envelope Parse(string sealedValue)
        {
            var parts = sealedValue.Split('.');
            try
            {
                if (parts.Length == 5 && parts[0] == Format
                    && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var version)
                    && FromBase64Url(parts[2]) is { Length: NonceBytes + SecretKeySet.KeyBytes + TagBytes } wrapped
                    && FromBase64Url(parts[3]) is { Length: NonceBytes } nonce)
                {
                    return new Envelope(version, wrapped, nonce, FromBase64Url(parts[4]));
                }
            }
            catch (FormatException exception)
            {
                throw new SecretUnreadableException("A stored secret is not valid base64url.", exception);
            }

            throw new SecretUnreadableException($"A stored secret is not a sealed value of format {Format}.");
        }
    }
}
