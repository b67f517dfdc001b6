using System.Text.Json;
using Dapr;
using Microsoft.Extensions.Options;
using Provisioner.Messaging.Dapr;
using Provisioner.Messaging.Wire;
using Provisioner.Workers;

namespace Provisioner.Commands;

/// <summary>
/// The provisioner's subscription to the commands topic. A command is acknowledged only when the worker
/// has carried it out and reported the outcome; until then the sidecar holds it, so a provisioner killed
/// mid-step gets it again after its restart (every step is idempotent). A message that can never be
/// read, or whose authenticator does not match, answers DROP (a RETRY would bring the same bytes back forever), and
/// the sidecar moves it to the dead-letter topic, where the control plane records it on the operation it belonged to
/// if it is authentic; a forged or altered one changes nothing, and its operation's command is sent again when it stalls.
/// </summary>
public static partial class CommandSubscription
{
    public const string Route = "/provisioning/commands";

    public static IEndpointRouteBuilder MapProvisioningCommands(this IEndpointRouteBuilder endpoints)
    {
        var settings = endpoints.ServiceProvider.GetRequiredService<IOptions<DaprTransportOptions>>().Value;
        endpoints.MapPost(Route, HandleAsync)
            .RequireDaprAppToken()
            .WithTopic(new TopicOptions
            {
                PubsubName = settings.PubSubName,
                Name = settings.CommandsTopic,
                DeadLetterTopic = settings.DeadLetterTopic,
            });
        return endpoints;
    }

    private static async Task<IResult> HandleAsync(
        HttpRequest request,
        ProvisioningWireFormat wire,
        WireSecretKeyLoader keys,
        ProvisioningWorker worker,
        BusRefusals refusals,
        IHostApplicationLifetime lifetime,
        ILoggerFactory loggers,
        CancellationToken cancellationToken)
    {
        var logger = loggers.CreateLogger(typeof(CommandSubscription));
        JsonElement body;
        try
        {
            body = await JsonSerializer.DeserializeAsync<JsonElement>(request.Body, cancellationToken: cancellationToken);
        }
        catch (JsonException exception)
        {
            LogDropped(logger, null, null, $"the message is not JSON ({exception.Message})");
            return TopicResponses.Drop;
        }

        try
        {
            await keys.EnsureLoadedAsync(cancellationToken);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            // The secret store may be starting up: the command itself is fine, so ask for it again.
            LogKeyUnavailable(logger, exception);
            return TopicResponses.Retry;
        }

        Messaging.ProvisioningCommand command;
        try
        {
            command = wire.ReadCommand(body);
        }
        catch (WireFormatException exception)
        {
            refusals.Record(WireDirection.Command, exception);
            var header = ProvisioningWireFormat.Peek(body);
            LogDropped(logger, header.InstanceId, header.OperationId, exception.Message);
            return TopicResponses.Drop;
        }

        // Host shutdown, not the request's abort, stops the work: a step half-done by a dying request would be redone anyway.
        var outcome = await worker.HandleAsync(command, lifetime.ApplicationStopping);
        return outcome == CommandOutcome.Done ? TopicResponses.Success : TopicResponses.Retry;
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Dropping a provisioning command for instance {InstanceId}, operation {OperationId}, to the dead-letter topic: {Reason}")]
    private static partial void LogDropped(ILogger logger, string? instanceId, string? operationId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The key for instance passwords is not available yet; asking the sidecar to deliver the command again")]
    private static partial void LogKeyUnavailable(ILogger logger, Exception exception);
}
