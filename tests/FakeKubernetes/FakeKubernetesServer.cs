using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace FakeKubernetes;

/// <summary>
/// A Kubernetes API server on a free loopback port for the real KubernetesClient: the REST paths of the kinds in
/// <see cref="ResourceType.All"/> (GET, list, POST, PUT, server-side apply PATCH with <c>fieldManager</c> and <c>force</c>,
/// DELETE, and the <c>/status</c> subresources), answering errors as Status objects with the API server's codes and
/// reasons, and throttling a client that sends too much (<see cref="Throttle"/>). Behind it, <see cref="Controllers"/> play the StatefulSet, garbage-collection, namespace and claim-protection
/// controllers, and <see cref="Kubelet"/> runs every pod's container as a real local process.
/// </summary>
public sealed class FakeKubernetesServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private FakeKubernetesServer(WebApplication app, string root, TimeProvider time)
    {
        _app = app;
        Store = new ObjectStore(time);
        Kubelet = new Kubelet(Store, root);
        Controllers = new Controllers(Store, Kubelet);
    }

    public string BaseUrl { get; private set; } = "";

    public ObjectStore Store { get; }

    public Kubelet Kubelet { get; }

    public Controllers Controllers { get; }

    /// <summary>Every request as <c>METHOD path?query</c>, in order.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    /// <summary>Decides per request whether to refuse it before it runs: return a status code (e.g. 429, 500) or null.</summary>
    public Func<HttpRequest, int?> Faults { get; set; } = _ => null;

    /// <summary>On by default; a test may set a smaller one to be throttled sooner.</summary>
    public RequestThrottle Throttle { get; set; } = new();

    /// <param name="root">Where pods' volumes and logs live.</param>
    public static async Task<FakeKubernetesServer> StartAsync(string root, TimeProvider? time = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new FakeKubernetesServer(app, root, time ?? TimeProvider.System);
        app.Run(server.HandleAsync);
        await app.StartAsync();
        server.BaseUrl = app.Urls.First().TrimEnd('/');
        server.Controllers.Start();
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await Controllers.DisposeAsync();
        await Kubelet.DisposeAsync();
        Throttle.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    /// <summary>An object as stored, or null; for tests' assertions.</summary>
    public JsonObject? Get(string kind, string? ns, string name) => Store.Get(new ObjectKey(ResourceType.Of(kind), ns, name));

    public IReadOnlyList<JsonObject> List(string kind, string? ns = null) => Store.List(ResourceType.Of(kind), ns);

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        Requests.Enqueue($"{request.Method} {request.Path}{request.QueryString}");
        try
        {
            Throttle.Take(context.Response.Headers);
            if (Faults(request) is { } fault)
            {
                if (fault == 429)
                {
                    context.Response.Headers.RetryAfter = "1";
                }

                throw new ApiException(fault, fault == 429 ? "TooManyRequests" : "InternalError", fault == 429 ? "Too many requests, please try again later." : "Internal error occurred: injected");
            }

            var route = Route.Parse(request.Path.Value ?? "") ?? throw new ApiException(404, "NotFound", "the server could not find the requested resource");
            var result = request.Method switch
            {
                "GET" when route.Name is null => List(route),
                "GET" => Store.Get(route.Key) ?? throw ApiException.NotFound(route.Key),
                "POST" when route.Name is null => Create(route, await ReadBodyAsync(request), request),
                "PUT" when route.Name is not null => Store.Replace(route.Key, await ReadBodyAsync(request), Manager(request), route.Status),
                "PATCH" when route.Name is not null => await PatchAsync(route, request),
                "DELETE" when route.Name is not null => Store.Delete(route.Key),
                _ => throw new ApiException(405, "MethodNotAllowed", $"the server does not allow this method on the requested resource"),
            };
            await WriteAsync(context, request.Method == "POST" ? 201 : 200, result);
        }
        catch (ApiException exception)
        {
            await WriteAsync(context, exception.Code, new JsonObject
            {
                ["kind"] = "Status",
                ["apiVersion"] = "v1",
                ["metadata"] = new JsonObject(),
                ["status"] = "Failure",
                ["message"] = exception.Message,
                ["reason"] = exception.Reason,
                ["code"] = exception.Code,
            });
        }
    }

    private JsonObject List(Route route) => new()
    {
        ["kind"] = route.Type.Kind + "List",
        ["apiVersion"] = route.Type.GroupVersion,
        ["metadata"] = new JsonObject(),
        ["items"] = new JsonArray([.. Store.List(route.Type, route.Namespace)]),
    };

    private JsonObject Create(Route route, JsonObject body, HttpRequest request)
    {
        var name = (string?)body["metadata"]?["name"] ?? throw new ApiException(422, "Invalid", $"{route.Type.Kind} is invalid: metadata.name: Required value: name or generateName is required");
        return Store.Create(new ObjectKey(route.Type, route.Namespace, name), body, Manager(request));
    }

    private async Task<JsonObject> PatchAsync(Route route, HttpRequest request)
    {
        var contentType = request.ContentType?.Split(';')[0].Trim();
        if (contentType != "application/apply-patch+yaml")
        {
            throw new ApiException(415, "UnsupportedMediaType", $"the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml (this fake serves only server-side apply), not {contentType}");
        }

        if (string.IsNullOrEmpty(request.Query["fieldManager"]))
        {
            throw new ApiException(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch");
        }

        var force = request.Query["force"] == "true";
        return Store.Apply(route.Key, await ReadBodyAsync(request), request.Query["fieldManager"]!, force, route.Status);
    }

    private static string Manager(HttpRequest request) =>
        request.Query["fieldManager"] is { Count: > 0 } manager ? manager.ToString() : request.Headers.UserAgent.ToString().Split('/')[0];

    private static async Task<JsonObject> ReadBodyAsync(HttpRequest request)
    {
        try
        {
            // YAML is a superset of JSON; the clients this fake serves send JSON.
            return (await JsonSerializer.DeserializeAsync<JsonObject>(request.Body)) ?? throw new ApiException(400, "BadRequest", "empty body");
        }
        catch (JsonException exception)
        {
            throw new ApiException(400, "BadRequest", $"the body is not a JSON object: {exception.Message}");
        }
    }

    private static async Task WriteAsync(HttpContext context, int status, JsonObject body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(body.ToJsonString());
    }

    /// <summary>A REST path: <c>/api/v1/...</c> or <c>/apis/GROUP/VERSION/...</c>, then <c>[namespaces/NS/]PLURAL[/NAME[/status]]</c>.</summary>
    private sealed record Route(ResourceType Type, string? Namespace, string? Name, bool Status)
    {
        public ObjectKey Key => new(Type, Namespace, Name!);

        public static Route? Parse(string path)
        {
            var segments = path.Trim('/').Split('/');
            string groupVersion;
            string[] rest;
            if (segments is ["api", "v1", ..])
            {
                groupVersion = "v1";
                rest = segments[2..];
            }
            else if (segments.Length >= 3 && segments[0] == "apis")
            {
                groupVersion = segments[1] + "/" + segments[2];
                rest = segments[3..];
            }
            else
            {
                return null;
            }

            string? ns = null;
            if (rest is ["namespaces", _, _, ..] && !(rest.Length == 3 && rest[2] is "status" or "finalize"))
            {
                ns = rest[1];
                rest = rest[2..];
            }

            if (rest.Length == 0 || ResourceType.Find(groupVersion, rest[0]) is not { } type || type.Namespaced != (ns is not null))
            {
                return null;
            }

            return rest.Length switch
            {
                1 => new Route(type, ns, null, false),
                2 => new Route(type, ns, rest[1], false),
                3 when rest[2] == "status" && type.HasStatus => new Route(type, ns, rest[1], true),
                _ => null,
            };
        }
    }
}
