using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FakeDapr;

/// <summary>
/// One app's sidecar: serves daprd's gRPC API on a loopback port for the app's DaprClient, discovers the app's
/// subscriptions through <c>GET /dapr/subscribe</c> as daprd does at start, and delivers each message of a
/// subscribed topic to the app's route as a CloudEvent, reading the answer as daprd does: 2xx (or SUCCESS)
/// consumes it, RETRY or any other status or a failed connection redelivers it, DROP or 404 gives up on it;
/// a message given up on or out of attempts goes to the subscription's dead-letter topic.
/// </summary>
public sealed class FakeDaprSidecar : IAsyncDisposable
{
    private readonly FakePubSub _broker;
    private readonly HttpClient _app;
    private readonly IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> _secretStores;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Subscription> _subscriptions = [];
    private readonly TaskCompletionSource _subscribed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private WebApplication? _server;
    private Task? _discovery;

    private FakeDaprSidecar(
        FakePubSub broker,
        string appId,
        HttpClient app,
        IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>>? secretStores,
        string? apiToken,
        string? appApiToken)
    {
        _broker = broker;
        AppId = appId;
        _app = app;
        _secretStores = secretStores ?? new Dictionary<string, IReadOnlyDictionary<string, string>>();
        ApiToken = apiToken;
        AppApiToken = appApiToken;
        if (appApiToken is not null)
        {
            _app.DefaultRequestHeaders.Add("dapr-api-token", appApiToken);
        }
    }

    public string AppId { get; }

    /// <summary>DAPR_GRPC_ENDPOINT for the app's DaprClient.</summary>
    public string GrpcEndpoint { get; private set; } = "";

    /// <summary>DAPR_API_TOKEN: when set, gRPC calls without it are refused as daprd refuses them.</summary>
    public string? ApiToken { get; }

    /// <summary>APP_API_TOKEN: when set, sent as <c>dapr-api-token</c> on every call to the app, as daprd does.</summary>
    public string? AppApiToken { get; }

    /// <summary>Every gRPC method the app called, in order (a method this fake lacks shows here too, answered Unimplemented).</summary>
    public ConcurrentQueue<string> Calls { get; } = new();

    /// <summary>What the sidecar found wrong in the app's answers (a malformed subscription list, an unknown pub/sub).</summary>
    public ConcurrentQueue<string> Warnings { get; } = new();

    public IReadOnlyList<(string PubSubName, string Topic, string Route, string? DeadLetterTopic)> Subscriptions =>
        [.. _subscriptions.Select(subscription => (subscription.PubSubName, subscription.Topic, subscription.Route, subscription.DeadLetterTopic))];

    /// <param name="appAddress">The app's HTTP address (daprd's --app-port); null for an app that only publishes.</param>
    /// <param name="appHandler">Delivers to an in-memory app (TestServer) instead of <paramref name="appAddress"/>.</param>
    /// <param name="secretStores">Secret stores by name, each a key → value map (a local file store's contents).</param>
    public static async Task<FakeDaprSidecar> StartAsync(
        FakePubSub broker,
        string appId,
        Uri? appAddress,
        HttpMessageHandler? appHandler = null,
        IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>>? secretStores = null,
        string? apiToken = null,
        string? appApiToken = null)
    {
        ArgumentNullException.ThrowIfNull(broker);
        var app = new HttpClient(appHandler ?? new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(2) })
        {
            BaseAddress = appAddress ?? new Uri("http://127.0.0.1"),
            // A command runs as long as its steps; daprd waits for the app's answer without a timeout of its own.
            Timeout = TimeSpan.FromMinutes(10),
        };
        var sidecar = new FakeDaprSidecar(broker, appId, app, secretStores, apiToken, appApiToken);
        await sidecar.StartServerAsync();
        if (appAddress is null)
        {
            sidecar._subscribed.TrySetResult();
        }
        else
        {
            sidecar._discovery = Task.Run(sidecar.DiscoverSubscriptionsAsync, CancellationToken.None);
        }

        return sidecar;
    }

    /// <summary>Completes once the app answered <c>/dapr/subscribe</c> and its subscriptions receive messages.</summary>
    public Task WhenSubscribedAsync(TimeSpan timeout) => _subscribed.Task.WaitAsync(timeout);

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        foreach (var subscription in _subscriptions)
        {
            _broker.Unsubscribe(subscription);
            await subscription.DisposeAsync();
        }

        if (_discovery is not null)
        {
            await _discovery;
        }

        if (_server is not null)
        {
            await _server.StopAsync();
            await _server.DisposeAsync();
        }

        _app.Dispose();
        _stopping.Dispose();
    }

    internal void CheckApiToken(ServerCallContext context)
    {
        if (ApiToken is not null && context.RequestHeaders.GetValue("dapr-api-token") != ApiToken)
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, "authentication error: api token mismatch"));
        }
    }

    /// <summary>daprd's PublishEvent: checks the component and topic, wraps the data in a CloudEvent, hands it to the broker.</summary>
    internal void Publish(string pubSubName, string topic, byte[] data, string dataContentType, IDictionary<string, string> metadata)
    {
        if (string.IsNullOrEmpty(pubSubName))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "pubsub name is empty"));
        }

        if (!_broker.Components.Contains(pubSubName))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"pubsub {pubSubName} not found"));
        }

        if (string.IsNullOrEmpty(topic))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"topic is empty in pubsub {pubSubName}"));
        }

        var contentType = string.IsNullOrEmpty(dataContentType) ? "application/json" : dataContentType;
        JsonNode? payload;
        if (contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) || contentType.EndsWith("+json", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                payload = data.Length == 0 ? null : JsonNode.Parse(data);
            }
            catch (JsonException exception)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"error when publish to topic {topic} in pubsub {pubSubName}: {exception.Message}"));
            }
        }
        else
        {
            payload = JsonValue.Create(Encoding.UTF8.GetString(data));
        }

        var traceParent = $"00-{ActivityTraceId.CreateRandom()}-{ActivitySpanId.CreateRandom()}-01";
        var envelope = new JsonObject
        {
            ["id"] = Guid.NewGuid().ToString(),
            ["source"] = AppId,
            ["type"] = "com.dapr.event.sent",
            ["specversion"] = "1.0",
            ["datacontenttype"] = contentType,
            ["topic"] = topic,
            ["pubsubname"] = pubSubName,
            ["traceid"] = traceParent,
            ["traceparent"] = traceParent,
            ["tracestate"] = "",
            ["time"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", System.Globalization.CultureInfo.InvariantCulture),
            ["data"] = payload,
        };
        _ = metadata;
        _broker.Publish(new CloudEvent(pubSubName, topic, envelope));
    }

    internal IReadOnlyDictionary<string, string> GetSecret(string storeName, string key)
    {
        if (_secretStores.Count == 0)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, "secret store is not configured"));
        }

        if (!_secretStores.TryGetValue(storeName, out var store))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"failed finding secret store with key {storeName}"));
        }

        return store.TryGetValue(key, out var value)
            ? new Dictionary<string, string> { [key] = value }
            : throw new RpcException(new Status(StatusCode.Internal, $"failed getting secret with key {key} from secret store {storeName}: secret {key} not found"));
    }

    /// <summary>One attempt, read as daprd reads an HTTP subscriber's answer.</summary>
    internal async Task<(DeliveryResult Result, string Detail)> DeliverOnceAsync(string route, CloudEvent message, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, route)
        {
            Content = new StringContent(message.Json, Encoding.UTF8, "application/cloudevents+json"),
        };
        request.Headers.TryAddWithoutValidation("traceparent", (string?)message.Envelope["traceparent"]);
        request.Headers.TryAddWithoutValidation("pubsubname", message.PubSubName);
        try
        {
            using var response = await _app.SendAsync(request, cancellationToken);
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                return (DeliveryResult.Drop, "404 from the app: non-retriable");
            }

            if (!response.IsSuccessStatusCode)
            {
                return (DeliveryResult.Retry, $"HTTP {(int)response.StatusCode} from the app");
            }

            string? status;
            try
            {
                status = body.Length == 0 ? null : JsonNode.Parse(body)?["status"]?.GetValue<string>();
            }
            catch (Exception exception) when (exception is JsonException or InvalidOperationException)
            {
                // daprd skips the status check when the body is not a status object.
                return (DeliveryResult.Success, "2xx with a body that is not a status");
            }

            return status?.ToUpperInvariant() switch
            {
                null or "" or "SUCCESS" => (DeliveryResult.Success, "SUCCESS"),
                "RETRY" => (DeliveryResult.Retry, "RETRY"),
                "DROP" => (DeliveryResult.Drop, "DROP"),
                _ => (DeliveryResult.Retry, $"unknown status '{status}' returned from app"),
            };
        }
        catch (HttpRequestException exception)
        {
            return (DeliveryResult.Retry, $"app unreachable: {exception.Message}");
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (DeliveryResult.Retry, "app did not answer in time");
        }
    }

    internal void SendToDeadLetter(string pubSubName, string deadLetterTopic, CloudEvent message) =>
        _broker.Publish(message with { PubSubName = pubSubName, Topic = deadLetterTopic });

    private async Task StartServerAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc();
        builder.Services.AddSingleton(new DaprRuntimeService(this));
        var server = builder.Build();
        server.Use((context, next) =>
        {
            Calls.Enqueue(context.Request.Path);
            return next(context);
        });
        server.MapGrpcService<DaprRuntimeService>();
        await server.StartAsync();
        _server = server;
        var address = server.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        GrpcEndpoint = address.Replace("[::1]", "127.0.0.1", StringComparison.Ordinal);
    }

    /// <summary>daprd asks the app for its subscriptions once it answers; a 404 means it has none.</summary>
    private async Task DiscoverSubscriptionsAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                using var response = await _app.GetAsync(new Uri("/dapr/subscribe", UriKind.Relative), _stopping.Token);
                if (response.StatusCode == HttpStatusCode.NotFound)
                {
                    _subscribed.TrySetResult();
                    return;
                }

                if (response.IsSuccessStatusCode)
                {
                    Register(await response.Content.ReadAsStringAsync(_stopping.Token));
                    _subscribed.TrySetResult();
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // The app is not listening yet.
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                return;
            }

            try
            {
                await Task.Delay(50, _stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void Register(string json)
    {
        if (JsonNode.Parse(json) is not JsonArray entries)
        {
            Warnings.Enqueue($"/dapr/subscribe did not answer a JSON array: {json}");
            return;
        }

        foreach (var entry in entries.OfType<JsonObject>())
        {
            // daprd reads these fields case-insensitively (Go's encoding/json); Dapr.AspNetCore writes camelCase.
            var fields = entry.ToDictionary(field => field.Key, field => field.Value, StringComparer.OrdinalIgnoreCase);
            var pubSub = Text(fields, "pubsubname");
            var topic = Text(fields, "topic");
            var route = Text(fields, "route")
                ?? (fields.TryGetValue("routes", out var routes) && routes is JsonObject routeSet
                    ? routeSet.ToDictionary(field => field.Key, field => field.Value, StringComparer.OrdinalIgnoreCase).GetValueOrDefault("default")?.GetValue<string>()
                    : null);
            if (pubSub is null || topic is null || route is null)
            {
                Warnings.Enqueue($"A subscription lacks pubsubname, topic or route: {entry.ToJsonString()}");
                continue;
            }

            if (!_broker.Components.Contains(pubSub))
            {
                Warnings.Enqueue($"Subscription to topic {topic} names pubsub {pubSub}, which is not loaded; it is ignored.");
                continue;
            }

            var subscription = new Subscription(this, _broker, pubSub, topic, route.StartsWith('/') ? route : "/" + route, Text(fields, "deadLetterTopic"), _stopping.Token);
            _subscriptions.Add(subscription);
            _broker.Subscribe(subscription);
        }
    }

    private static string? Text(Dictionary<string, JsonNode?> fields, string name) =>
        fields.TryGetValue(name, out var value) && value is JsonValue text && text.TryGetValue<string>(out var result) && result.Length > 0 ? result : null;
}
