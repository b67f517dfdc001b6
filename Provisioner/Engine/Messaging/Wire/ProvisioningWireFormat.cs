using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Provisioner.Deployments;

namespace Provisioner.Messaging.Wire;

/// <summary>
/// How commands and events look on a message bus: camelCase JSON with a <c>kind</c> discriminator, enums
/// as strings, every required member present, secrets encrypted by <see cref="WireSecretProtector"/>, and the whole
/// message signed by <see cref="WireAuthenticator"/>. Both sides of the bus read and write through this one class, so
/// they cannot drift apart; nothing is read from a message before its authenticator has been checked.
/// </summary>
public sealed class ProvisioningWireFormat
{
    /// <summary>How far ahead of the reader's clock an event may be stamped, unless configured.</summary>
    public static readonly TimeSpan DefaultMaxClockSkew = TimeSpan.FromMinutes(5);

    private readonly WireAuthenticator _authenticator;
    private readonly TimeProvider _clock;

    public ProvisioningWireFormat(WireSecretProtector secrets, TimeProvider? clock = null, TimeSpan? maxClockSkew = null)
    {
        Secrets = secrets;
        _authenticator = new WireAuthenticator(secrets);
        _clock = clock ?? TimeProvider.System;
        MaxClockSkew = maxClockSkew ?? DefaultMaxClockSkew;
        Options = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            // A message from a newer or broken sender must fail loudly, not half-deserialize.
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            RespectNullableAnnotations = true,
            RespectRequiredConstructorParameters = true,
            AllowOutOfOrderMetadataProperties = true,
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        };
        Options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.CamelCase, allowIntegerValues: false));
        Options.Converters.Add(new SecretConverter(secrets));
        Options.MakeReadOnly(populateMissingResolver: true);
    }

    /// <summary>The options the messages are written and read with.</summary>
    public JsonSerializerOptions Options { get; }

    public WireSecretProtector Secrets { get; }

    public TimeSpan MaxClockSkew { get; }

    /// <summary>The command as it goes on the bus: password encrypted, signed with the current key.</summary>
    public JsonElement WriteCommand(ProvisioningCommand command) => Write(command, WireDirection.Command);

    /// <summary>The event as it goes on the bus, signed with the current key.</summary>
    public JsonElement WriteEvent(ProvisioningEvent provisioningEvent) => Write(provisioningEvent, WireDirection.Event);

    /// <summary>Signs a message already in its wire shape (one that was never a command, or was changed on purpose).</summary>
    public JsonElement Sign(JsonObject message, WireDirection direction) => JsonSerializer.SerializeToElement(_authenticator.Sign(message, direction));

    /// <exception cref="WireFormatException">The command is not authentic, cannot be read or is not valid; the message says why.</exception>
    public ProvisioningCommand ReadCommand(JsonElement json)
    {
        var command = Deserialize<ProvisioningCommand>(_authenticator.Verify(json, WireDirection.Command), "provisioning command");
        var problems = new List<string>();
        Require(problems, !string.IsNullOrWhiteSpace(command.InstanceId), "instanceId is empty");
        if (command is ApplyDeploymentCommand apply)
        {
            Require(problems, apply.Spec.InstanceId == apply.InstanceId, $"spec.instanceId '{apply.Spec.InstanceId}' differs from instanceId '{apply.InstanceId}'");
            Require(problems, apply.Spec.Generation > 0, $"spec.generation must be positive, not {apply.Spec.Generation}");
            Require(problems, apply.Purpose == ApplyPurpose.Reconcile || apply.OperationId is not null, $"a {apply.Purpose.ToString().ToLowerInvariant()} needs an operationId");
            Require(problems, apply.Spec.Password.Value.Length > 0, "spec.password is empty");
        }
        else if (command is CancelOperationCommand)
        {
            Require(problems, command.OperationId is not null, "a cancel needs an operationId");
        }

        return problems.Count == 0
            ? command
            : throw new WireFormatException($"The {KindOf(command)} command for instance '{command.InstanceId}' is invalid: {string.Join("; ", problems)}.");
    }

    /// <summary>
    /// An event a worker sent. One stamped further ahead of this side's clock than <see cref="MaxClockSkew"/> is refused: its
    /// time would outrank every genuine observation after it (health frozen until then). A late one is fine: a broker may
    /// hold events while the control plane is away, and the grain orders them by generation and sequence, not by time.
    /// </summary>
    /// <exception cref="WireFormatException">The event is not authentic, cannot be read, is not valid, or is from the future.</exception>
    public ProvisioningEvent ReadEvent(JsonElement json)
    {
        var provisioningEvent = Deserialize<ProvisioningEvent>(_authenticator.Verify(json, WireDirection.Event), "provisioning event");
        if (string.IsNullOrWhiteSpace(provisioningEvent.InstanceId))
        {
            throw new WireFormatException("The provisioning event names no instance (instanceId is empty).");
        }

        var now = _clock.GetUtcNow();
        return provisioningEvent.OccurredAt <= now + MaxClockSkew
            ? provisioningEvent
            : throw new WireFormatException(
                $"The provisioning event for instance '{provisioningEvent.InstanceId}' is stamped {provisioningEvent.OccurredAt:O}, more than " +
                $"{MaxClockSkew} ahead of this side's clock ({now:O}): check the worker's clock (Provisioning:Dapr:MaxClockSkew sets the allowance).",
                reason: WireRefusal.Clock);
    }

    /// <summary>
    /// What can be told of a message that may not deserialize: its kind and the ids to route it by. Reads
    /// only top-level strings and numbers, so it works on anything that is a JSON object.
    /// </summary>
    public static MessageHeader Peek(JsonElement json)
    {
        if (json.ValueKind != JsonValueKind.Object)
        {
            return new MessageHeader(null, null, null, null, null);
        }

        long? generation = json.TryGetProperty("spec", out var spec)
            && spec.ValueKind == JsonValueKind.Object
            && spec.TryGetProperty("generation", out var value)
            && value.ValueKind == JsonValueKind.Number
            && value.TryGetInt64(out var number)
                ? number
                : null;
        return new MessageHeader(StringOf(json, "kind"), StringOf(json, "instanceId"), StringOf(json, "operationId"), StringOf(json, "purpose"), generation);
    }

    public static string KindOf(ProvisioningCommand command) => command switch
    {
        ApplyDeploymentCommand => "apply",
        CancelOperationCommand => "cancel",
        _ => command.GetType().Name,
    };

    private JsonElement Write<T>(T message, WireDirection direction)
        where T : class
    {
        var json = JsonSerializer.SerializeToNode(message, Options)!.AsObject();
        return Sign(json, direction);
    }

    private T Deserialize<T>(JsonObject json, string what)
        where T : class
    {
        try
        {
            return json.Deserialize<T>(Options) ?? throw new WireFormatException($"The {what} is JSON null.");
        }
        catch (JsonException exception)
        {
            var where = exception.Path is { Length: > 1 } path ? $" at {path}" : "";
            throw new WireFormatException($"The {what} cannot be read{where}: {FirstSentence(exception.Message)}", exception);
        }
        catch (NotSupportedException exception)
        {
            throw new WireFormatException($"The {what} cannot be read: {FirstSentence(exception.Message)}", exception);
        }
    }

    private static string FirstSentence(string message)
    {
        var end = message.IndexOf(". ", StringComparison.Ordinal);
        return end < 0 ? message : message[..(end + 1)];
    }

    private static void Require(List<string> problems, bool condition, string problem)
    {
        if (!condition)
        {
            problems.Add(problem);
        }
    }

    private static string? StringOf(JsonElement json, string name) =>
        json.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    /// <summary>A <see cref="Secret"/> is written encrypted and read decrypted; plaintext never reaches the bus.</summary>
    private sealed class SecretConverter(WireSecretProtector secrets) : JsonConverter<Secret>
    {
        public override Secret Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType != JsonTokenType.String)
            {
                throw new JsonException("A secret must be an encrypted string.");
            }

            return Secret.Of(secrets.Unprotect(reader.GetString()!));
        }

        public override void Write(Utf8JsonWriter writer, Secret value, JsonSerializerOptions options) =>
            writer.WriteStringValue(secrets.Protect(value.Value));
    }
}

/// <summary>The routing facts of a message, read without trusting the rest of it.</summary>
public sealed record MessageHeader(string? Kind, string? InstanceId, string? OperationId, string? Purpose, long? Generation);
