using Microsoft.AspNetCore.Http;

namespace Provisioner.Messaging.Dapr;

/// <summary>
/// The answers a Dapr subscriber gives its sidecar (HTTP 200 with a status): SUCCESS consumes the message,
/// RETRY has it delivered again later, DROP gives up on it (the sidecar moves it to the dead-letter topic).
/// </summary>
public static class TopicResponses
{
    public static IResult Success { get; } = Results.Json(new { status = "SUCCESS" });

    public static IResult Retry { get; } = Results.Json(new { status = "RETRY" });

    public static IResult Drop { get; } = Results.Json(new { status = "DROP" });
}
