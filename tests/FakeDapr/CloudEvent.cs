using System.Text.Json.Nodes;

namespace FakeDapr;

/// <summary>A message as the broker holds it: the CloudEvents 1.0 envelope daprd wraps around published data.</summary>
public sealed record CloudEvent(string PubSubName, string Topic, JsonObject Envelope)
{
    public string Id => (string)Envelope["id"]!;

    /// <summary>The published data (<c>data</c>), as the subscriber's CloudEvents middleware will hand it over.</summary>
    public JsonNode? Data => Envelope["data"];

    public string Json => Envelope.ToJsonString();

    public CloudEvent Copy() => this with { Envelope = (JsonObject)Envelope.DeepClone() };
}

/// <summary>How one delivery attempt ended, as daprd reads the app's answer.</summary>
public enum DeliveryResult
{
    Success,
    Retry,
    Drop,
}

/// <summary>One attempt to deliver a message to a subscriber app.</summary>
public sealed record Delivery(string AppId, string Topic, string MessageId, int Attempt, DeliveryResult Result, string Detail);
