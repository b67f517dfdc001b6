using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Provisioner.Messaging.Wire;

/// <summary>Which way a message travels; part of what its authenticator covers, so an event cannot pass for a command.</summary>
public enum WireDirection
{
    Command,
    Event,
}

/// <summary>
/// Signs and checks whole provisioning messages: an HMAC-SHA256 over the message's canonical form (every member, the
/// encrypted password included), bound to the direction, the instance id and the generation it is about. A message for
/// one instance cannot be delivered as another's, a ciphertext cannot be moved into another message, no field can be
/// changed, and nobody without the key can make a message at all (say, one with a far higher generation that would
/// make the backend ignore every genuine command after it).
/// </summary>
/// <remarks>
/// The authenticator travels as the member <c>authenticator</c>: <c>v1.&lt;key id&gt;.&lt;mac&gt;</c> (base64url). Its key is
/// derived (HKDF) from the provisioning secret key of that id, so rotating that key rotates both, and a receiver accepts
/// whatever key its <see cref="WireSecretProtector"/> accepts. The canonical form is JSON with members sorted by name,
/// no whitespace, strings re-escaped and numbers re-written, so a broker that re-formats the JSON changes nothing; a
/// member named twice is refused, as the reader and the signature might otherwise see different values.
/// </remarks>
public sealed class WireAuthenticator(WireSecretProtector keys)
{
    public const string Member = "authenticator";
    private const string Version = "v1";
    private static readonly byte[] s_derivation = Encoding.ASCII.GetBytes("controlplane provisioning message authenticator v1");
    private static readonly JsonWriterOptions s_canonical = new() { Encoder = JavaScriptEncoder.Default, Indented = false };

    /// <summary>Adds the authenticator to <paramref name="message"/>, made with the current key.</summary>
    public JsonObject Sign(JsonObject message, WireDirection direction)
    {
        ArgumentNullException.ThrowIfNull(message);
        message.Remove(Member);
        var key = keys.CurrentKey;
        var element = JsonSerializer.SerializeToElement(message);
        message[Member] = string.Join('.', Version, key.Id, Base64Url(Mac(key, direction, element)));
        return message;
    }

    /// <summary>Checks the authenticator of <paramref name="message"/> and answers the message without it.</summary>
    /// <exception cref="WireFormatException">Missing, made with a key this side does not hold, or not matching the content.</exception>
    public JsonObject Verify(JsonElement message, WireDirection direction)
    {
        var what = direction == WireDirection.Command ? "command" : "event";
        if (message.ValueKind != JsonValueKind.Object)
        {
            throw new WireFormatException($"The provisioning {what} cannot be read: it is not a JSON object.");
        }

        if (!message.TryGetProperty(Member, out var presented) || presented.ValueKind != JsonValueKind.String)
        {
            throw new WireFormatException($"The provisioning {what} has no authenticator: it was not sent by a control plane or provisioner holding the key.", reason: WireRefusal.Authenticator);
        }

        var parts = presented.GetString()!.Split('.');
        if (parts.Length != 3 || parts[0] != Version)
        {
            throw new WireFormatException($"The provisioning {what}'s authenticator is not of format {Version}.", reason: WireRefusal.Authenticator);
        }

        var key = keys.KeyNamed(parts[1], $"The provisioning {what} was signed");
        if (!TryFromBase64Url(parts[2], out var mac) || !CryptographicOperations.FixedTimeEquals(mac, Mac(key, direction, message)))
        {
            throw new WireFormatException(
                $"The provisioning {what} for instance '{StringOf(message, "instanceId")}' does not match its authenticator: it was altered in transit, " +
                "replayed for another instance or generation, or forged.",
                reason: WireRefusal.Authenticator);
        }

        var content = JsonObject.Create(message)!;
        content.Remove(Member);
        return content;
    }

    private static byte[] Mac(WireSecretProtector.KeyMaterial key, WireDirection direction, JsonElement content)
    {
        var generation = direction == WireDirection.Command
            ? (content.TryGetProperty("spec", out var spec) && spec.ValueKind == JsonValueKind.Object ? NumberOf(spec, "generation") : "-")
            : NumberOf(content, "generation");
        var buffer = new ArrayBufferWriter<byte>();
        buffer.Write(Encoding.UTF8.GetBytes($"provisioning-{direction.ToString().ToLowerInvariant()} {Version}\n{key.Id}\n{StringOf(content, "instanceId")}\n{generation}\n"));
        using (var writer = new Utf8JsonWriter(buffer, s_canonical))
        {
            WriteCanonical(writer, content, skip: Member);
        }

        var macKey = HKDF.DeriveKey(HashAlgorithmName.SHA256, key.Bytes, 32, salt: [], info: s_derivation);
        return HMACSHA256.HashData(macKey, buffer.WrittenSpan);
    }

    /// <param name="skip">A member of this object left out (the authenticator itself); not of nested ones.</param>
    private static void WriteCanonical(Utf8JsonWriter writer, JsonElement element, string? skip = null)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                string? previous = null;
                foreach (var property in element.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal))
                {
                    if (property.Name == previous)
                    {
                        throw new WireFormatException($"The provisioning message names '{property.Name}' twice.", reason: WireRefusal.Authenticator);
                    }

                    previous = property.Name;
                    if (property.Name == skip)
                    {
                        continue;
                    }

                    writer.WritePropertyName(property.Name);
                    WriteCanonical(writer, property.Value);
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in element.EnumerateArray())
                {
                    WriteCanonical(writer, item);
                }

                writer.WriteEndArray();
                break;
            case JsonValueKind.String:
                writer.WriteStringValue(element.GetString());
                break;
            case JsonValueKind.Number when element.TryGetInt64(out var integer):
                writer.WriteNumberValue(integer);
                break;
            case JsonValueKind.Number:
                writer.WriteNumberValue(element.GetDouble());
                break;
            default:
                element.WriteTo(writer);
                break;
        }
    }

    private static string StringOf(JsonElement json, string name) =>
        json.ValueKind == JsonValueKind.Object && json.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()! : "";

    private static string NumberOf(JsonElement json, string name) =>
        json.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number)
            ? number.ToString(System.Globalization.CultureInfo.InvariantCulture)
            : "-";

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static bool TryFromBase64Url(string text, out byte[] bytes)
    {
        var padded = text.Replace('-', '+').Replace('_', '/');
        padded = padded.PadRight(padded.Length + ((4 - (padded.Length % 4)) % 4), '=');
        bytes = new byte[padded.Length];
        if (!Convert.TryFromBase64String(padded, bytes, out var written))
        {
            return false;
        }

        bytes = bytes[..written];
        return true;
    }
}
