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
/// <see cref="IProvisioningEventSink"/> as the in-process workers' do, once authenticated and checked
/// (<see cref="ProvisioningWireFormat.ReadEvent"/>, <see cref="DaprAppChannel.Check"/>), and authentic dead-lettered
/// commands are recorded on the operation they belonged to. A message that is not authentic (or from a worker's future)
/// is dropped with a log line and a count in <see cref="BusRefusals"/>, and reaches no grain, so it can neither move an
/// instance's generation nor fail its operation. The sidecar calls these without an API key, so they answer only on the
/// app channel's own listener and only with the sidecar's app token.
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
        WireSecretKeyLoader keys,
        BusRefusals refusals,
        IProvisioningEventSink sink,
        DaprAppChannel channel,
        ILoggerFactory loggers,
        CancellationToken cancellationToken)
    {
        var logger = loggers.CreateLogger(typeof(ProvisioningSubscriptions));
        if (await KeysUnavailableAsync(keys, logger, cancellationToken))
        {
            return TopicResponses.Retry;
        }

        ProvisioningEvent provisioningEvent;
        try
        {
            provisioningEvent = wire.ReadEvent(await JsonSerializer.DeserializeAsync<JsonElement>(request.Body, cancellationToken: cancellationToken));
        }
        catch (Exception exception) when (exception is JsonException or WireFormatException)
        {
            // It will never read differently; the next reconcile reports the instance's state again.
            if (exception is WireFormatException refusal)
            {
                refusals.Record(WireDirection.Event, refusal);
            }

            LogEventDropped(logger, exception.Message);
            return TopicResponses.Drop;
        }

        (provisioningEvent, var refused) = channel.Check(provisioningEvent);
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
        BusRefusals refusals,
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

        if (await KeysUnavailableAsync(keys, logger, cancellationToken))
        {
            return TopicResponses.Retry;
        }

        // Reading it here with the same wire format gives the same error the provisioner had, unless the fault was only on
        // its side (another key, a failure on every delivery). One that is not authentic is nobody's command: recording it
        // would let whoever can publish to the topic fail any instance's operation.
        string reason;
        try
        {
            wire.ReadCommand(body);
            reason = "The command is well formed, but the provisioner did not take it: it dropped it as unreadable (check that both apps use the " +
                "same Provisioning:Dapr secret key and version) or failed on every delivery. The provisioner's log names the cause.";
        }
        catch (WireFormatException exception) when (exception.Reason == WireRefusal.Authenticator)
        {
            refusals.Record(WireDirection.Command, exception);
            LogDeadLetterRefused(logger, header.InstanceId, exception.Message);
            return TopicResponses.Success;
        }
        catch (WireFormatException exception)
        {
            reason = exception.Message;
        }

        var deadLetter = new DeadLetteredCommand
        {
            Kind = header.Kind,
            OperationId = header.OperationId,
            Purpose = Enum.TryParse<ApplyPurpose>(header.Purpose, ignoreCase: true, out var purpose) ? purpose : null,
            Generation = header.Generation,
            Reason = reason,
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

    /// <summary>Loads the key before the first message is checked; if the secret store is not answering yet, the sidecar delivers again.</summary>
    private static async Task<bool> KeysUnavailableAsync(WireSecretKeyLoader keys, ILogger logger, CancellationToken cancellationToken)
    {
        try
        {
            await keys.EnsureLoadedAsync(cancellationToken);
            return false;
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            LogKeyUnavailable(logger, exception);
            return true;
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Dropping a provisioning event that cannot be read: {Reason}")]
    private static partial void LogEventDropped(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A provisioning event for instance {InstanceId} was not taken as sent: {Refused}")]
    private static partial void LogEventChecked(ILogger logger, string instanceId, string refused);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not deliver a provisioning message to instance {InstanceId}; the sidecar delivers it again")]
    private static partial void LogEventRetry(ILogger logger, Exception exception, string instanceId);

    [LoggerMessage(Level = LogLevel.Error, Message = "A dead-lettered provisioning command naming instance {InstanceId} is not authentic and is not recorded: {Reason}")]
    private static partial void LogDeadLetterRefused(ILogger logger, string instanceId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The provisioning secret key is not available yet; asking the sidecar to deliver the message again")]
    private static partial void LogKeyUnavailable(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "A dead-lettered provisioning command cannot be recorded anywhere: {Reason}")]
    private static partial void LogUnroutable(ILogger logger, string reason);
}
