using System.Text.Json;
using ControlPlane.Instances;
using global::Dapr;
using Microsoft.Extensions.Options;
using Provisioner.Messaging;
using Provisioner.Messaging.Dapr;
using Provisioner.Messaging.Wire;

namespace ControlPlane.Provisioning.Dapr;

/// <summary>
/// The control plane's Dapr subscriptions (only with <c>Provisioning:Transport=Dapr</c>): worker events go to
/// <see cref="IProvisioningEventSink"/> as the in-process workers' do, once checked (<see cref="DaprAppChannel.Check"/>),
/// and dead-lettered commands are recorded on the operation they belonged to. The sidecar calls these without an API
/// key, so they answer only on the app channel's own listener and only with the sidecar's app token.
/// </summary>
public static partial class ProvisioningSubscriptions
{
    public const string EventsRoute = "/dapr/provisioning/events";
    public const string DeadLettersRoute = "/dapr/provisioning/dead-letters";

    public static WebApplication UseProvisioningSubscriptions(this WebApplication app)
    {
        if (ProvisioningTransportExtensions.TransportOf(app.Configuration) == ProvisioningTransport.Dapr)
        {
            app.UseCloudEvents();
        }

        return app;
    }

    public static WebApplication MapProvisioningSubscriptions(this WebApplication app)
    {
        if (ProvisioningTransportExtensions.TransportOf(app.Configuration) != ProvisioningTransport.Dapr)
        {
            return app;
        }

        var settings = app.Services.GetRequiredService<IOptions<DaprTransportOptions>>().Value;
        var channel = app.Services.GetRequiredService<DaprAppChannel>();
        channel.OnlyHere(app.MapSubscribeHandler());
        channel.OnlyHere(app.MapPost(EventsRoute, HandleEventAsync)).WithTopic(settings.PubSubName, settings.EventsTopic);
        channel.OnlyHere(app.MapPost(DeadLettersRoute, HandleDeadLetterAsync)).WithTopic(settings.PubSubName, settings.DeadLetterTopic);
        return app;
    }

    private static async Task<IResult> HandleEventAsync(
        HttpRequest request,
        ProvisioningWireFormat wire,
        IProvisioningEventSink sink,
        DaprAppChannel channel,
        TimeProvider clock,
        ILoggerFactory loggers,
        CancellationToken cancellationToken)
    {
        var logger = loggers.CreateLogger(typeof(ProvisioningSubscriptions));
        ProvisioningEvent provisioningEvent;
        try
        {
            provisioningEvent = wire.ReadEvent(await JsonSerializer.DeserializeAsync<JsonElement>(request.Body, cancellationToken: cancellationToken));
        }
        catch (Exception exception) when (exception is JsonException or WireFormatException)
        {
            // It will never read differently; the next reconcile reports the instance's state again.
            LogEventDropped(logger, exception.Message);
            return TopicResponses.Drop;
        }

        (provisioningEvent, var refused) = channel.Check(provisioningEvent, clock.GetUtcNow());
        if (refused is not null)
        {
            LogEventChecked(logger, provisioningEvent.InstanceId, refused);
        }

        try
        {
            await sink.PublishAsync(provisioningEvent, cancellationToken);
            return TopicResponses.Success;
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The silo is starting or stopping, or storage failed: the grain decides on a redelivery as on the first.
            LogEventRetry(logger, exception, provisioningEvent.InstanceId);
            return TopicResponses.Retry;
        }
    }

    private static async Task<IResult> HandleDeadLetterAsync(
        HttpRequest request,
        ProvisioningWireFormat wire,
        WireSecretKeyLoader keys,
        IGrainFactory grains,
        IOptions<DaprTransportOptions> options,
        ILoggerFactory loggers,
        CancellationToken cancellationToken)
    {
        var logger = loggers.CreateLogger(typeof(ProvisioningSubscriptions));
        JsonElement body;
        try
        {
            body = await JsonSerializer.DeserializeAsync<JsonElement>(request.Body, cancellationToken: cancellationToken);
        }
        catch (JsonException exception)
        {
            LogUnroutable(logger, $"it is not JSON ({exception.Message})");
            return TopicResponses.Success;
        }

        var header = ProvisioningWireFormat.Peek(body);
        if (string.IsNullOrWhiteSpace(header.InstanceId))
        {
            LogUnroutable(logger, "it names no instance");
            return TopicResponses.Success;
        }

        var deadLetter = new DeadLetteredCommand
        {
            Kind = header.Kind,
            OperationId = header.OperationId,
            Purpose = Enum.TryParse<ApplyPurpose>(header.Purpose, ignoreCase: true, out var purpose) ? purpose : null,
            Generation = header.Generation,
            Reason = await ExplainAsync(wire, keys, body, cancellationToken),
            Topic = options.Value.DeadLetterTopic,
        };
        try
        {
            await grains.GetGrain<IInstanceGrain>(header.InstanceId).RecordDeadLetterAsync(deadLetter).WaitAsync(cancellationToken);
            return TopicResponses.Success;
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            LogEventRetry(logger, exception, header.InstanceId);
            return TopicResponses.Retry;
        }
    }

    /// <summary>
    /// Why the provisioner could not take the command: reading it here with the same wire format gives the same
    /// error the provisioner had, unless the fault is only on its side (another key, a failure on every delivery).
    /// </summary>
    private static async Task<string> ExplainAsync(ProvisioningWireFormat wire, WireSecretKeyLoader keys, JsonElement body, CancellationToken cancellationToken)
    {
        try
        {
            await keys.EnsureLoadedAsync(cancellationToken);
            wire.ReadCommand(body);
        }
        catch (WireFormatException exception)
        {
            return exception.Message;
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            return $"It could not be checked here either ({exception.Message}).";
        }

        return "The command is well formed, but the provisioner did not take it: it dropped it as unreadable (check that both apps use the " +
            "same Provisioning:Dapr secret key and version) or failed on every delivery. The provisioner's log names the cause.";
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Dropping a provisioning event that cannot be read: {Reason}")]
    private static partial void LogEventDropped(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A provisioning event for instance {InstanceId} was not taken as sent: {Refused}")]
    private static partial void LogEventChecked(ILogger logger, string instanceId, string refused);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not deliver a provisioning message to instance {InstanceId}; the sidecar delivers it again")]
    private static partial void LogEventRetry(ILogger logger, Exception exception, string instanceId);

    [LoggerMessage(Level = LogLevel.Error, Message = "A dead-lettered provisioning command cannot be recorded anywhere: {Reason}")]
    private static partial void LogUnroutable(ILogger logger, string reason);
}
