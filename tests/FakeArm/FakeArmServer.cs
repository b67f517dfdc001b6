using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace FakeArm;

/// <summary>
/// Azure Resource Manager on a free loopback port, for the real ArmClient: resource groups (PUT, GET, DELETE as a
/// long-running operation with a Location to poll), Microsoft.App/containerApps (PUT and DELETE as long-running operations
/// with Azure-AsyncOperation, GET without secret values, start and stop actions), the operation status endpoints, and a
/// managed identity token endpoint in App Service's protocol (what Container Apps gives its apps). It refuses what ARM
/// refuses: no or an unknown bearer token (401), a missing or unsupported api-version (400), a Container App in a group
/// that does not exist (404), invalid names, CPU and memory pairs, secret references and storages (400), and any write to
/// an app while one of its operations runs (409), and requests beyond the subscription's <see cref="Throttle"/> (429 with
/// Retry-After). Operations take <see cref="OperationDelay"/>; <see cref="Faults"/> injects 429, 409 or 500 per request.
/// </summary>
public sealed partial class FakeArmServer : IAsyncDisposable
{
    public const string SubscriptionId = "00000000-0000-0000-0000-00000000c0de";
    public const string EnvironmentGroup = "controlplane-env";
    public const string EnvironmentName = "instances-env";
    public const string StorageName = "instances";
    private static readonly string[] s_appsApiVersions = ["2024-03-01", "2023-05-01"];

    private readonly WebApplication _app;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, JsonObject> _groups = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, App> _apps = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, Operation> _operations = new(StringComparer.Ordinal);
    private readonly HashSet<string> _tokens = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private Task _loop = Task.CompletedTask;
    private string _identityBase = "";

    private FakeArmServer(WebApplication app, string root)
    {
        _app = app;
        Runner = new AppRunner(root);
    }

    public string BaseUrl { get; private set; } = "";

    public static string EnvironmentId => $"/subscriptions/{SubscriptionId}/resourceGroups/{EnvironmentGroup}/providers/Microsoft.App/managedEnvironments/{EnvironmentName}";

    public AppRunner Runner { get; }

    /// <summary>The secret an app must send in <c>X-IDENTITY-HEADER</c> to the token endpoint (Container Apps' IDENTITY_HEADER).</summary>
    public string IdentityHeader { get; } = Guid.NewGuid().ToString("N");

    public string IdentityEndpoint => _identityBase + "/msi/token";

    /// <summary>The PEM of the certificate the https endpoint presents, to trust as its root.</summary>
    public string CertificateFile { get; private init; } = "";

    public TimeSpan OperationDelay { get; set; } = TimeSpan.FromMilliseconds(300);

    public Func<HttpRequest, int?> Faults { get; set; } = _ => null;

    /// <summary>On by default with ARM's own limits; a test may set a smaller one to be throttled sooner.</summary>
    public SubscriptionThrottle Throttle { get; set; } = new();

    public ConcurrentQueue<string> Requests { get; } = new();

    /// <summary>Every request body the fake received, to check what reached ARM (e.g. that secrets travel only in secrets).</summary>
    public ConcurrentQueue<string> Bodies { get; } = new();

    /// <summary>
    /// Resource Manager on https (Azure.Core sends bearer tokens over TLS only) with a certificate made for this run, whose PEM
    /// is <see cref="CertificateFile"/>; the identity endpoint on plain http, as Container Apps serves it to its apps.
    /// </summary>
    public static async Task<FakeArmServer> StartAsync(string root)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
        var certificate = X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pfx), null);
        Directory.CreateDirectory(root);
        var certificateFile = Path.Combine(root, "fake-arm-root.pem");
        await File.WriteAllTextAsync(certificateFile, certificate.ExportCertificatePem());

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureHttpsDefaults(https => https.ServerCertificate = certificate));
        builder.WebHost.UseUrls("https://127.0.0.1:0", "http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new FakeArmServer(app, root) { CertificateFile = certificateFile };
        app.Run(server.HandleAsync);
        await app.StartAsync();
        server.BaseUrl = app.Urls.First(url => url.StartsWith("https:", StringComparison.Ordinal)).TrimEnd('/');
        server._identityBase = app.Urls.First(url => url.StartsWith("http:", StringComparison.Ordinal)).TrimEnd('/');
        server._loop = Task.Run(server.RunOperationsAsync);
        return server;
    }

    /// <summary>A token as the identity endpoint would issue it, for a test's own credential.</summary>
    public string IssueToken()
    {
        var token = "fake-arm-" + Guid.NewGuid().ToString("N");
        lock (_gate)
        {
            _tokens.Add(token);
        }

        return token;
    }

    /// <summary>A resource group made outside the control plane (as in the portal), with the tags its owner gave it.</summary>
    public void AddGroup(string name, IReadOnlyDictionary<string, string> tags) =>
        PutGroup(name, new JsonObject
        {
            ["location"] = "westeurope",
            ["tags"] = new JsonObject([.. tags.Select(tag => KeyValuePair.Create(tag.Key, (JsonNode?)tag.Value))]),
        });

    public IReadOnlyList<string> ResourceGroups()
    {
        lock (_gate)
        {
            return [.. _groups.Values.Select(group => (string)group["name"]!)];
        }
    }

    /// <summary>A Container App as ARM stores it (secrets with their values), or null.</summary>
    public JsonObject? StoredApp(string group, string name)
    {
        lock (_gate)
        {
            return _apps.TryGetValue(AppKey(group, name), out var app) ? app.Resource(includeSecrets: true) : null;
        }
    }

    public IReadOnlyList<string> Apps()
    {
        lock (_gate)
        {
            return [.. _apps.Values.Select(app => app.Id)];
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        await _loop;
        Runner.Dispose();
        Throttle.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _stopping.Dispose();
    }

    private static string AppKey(string group, string name) => $"{group}/{name}";

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        Requests.Enqueue($"{request.Method} {request.Path}{request.QueryString}");
        try
        {
            if (request.Path.StartsWithSegments("/msi/token"))
            {
                await WriteAsync(context, 200, IdentityToken(request));
                return;
            }

            if (!request.IsHttps)
            {
                throw new ArmException(400, "HttpsRequired", "Resource Manager is served over https only.");
            }

            Authenticate(request);
            Throttle.Take(request.Method, context.Response.Headers);
            if (Faults(request) is { } fault)
            {
                if (fault == 429)
                {
                    context.Response.Headers.RetryAfter = "1";
                }

                throw new ArmException(fault, fault switch
                {
                    429 => "TooManyRequests",
                    409 => "ContainerAppOperationInProgress",
                    _ => "InternalServerError",
                }, "Injected by the test.");
            }

            JsonObject? body = null;
            if (request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0)
            {
                using var reader = new StreamReader(request.Body);
                var text = await reader.ReadToEndAsync();
                Bodies.Enqueue(text);
                body = text.Length == 0 ? null : JsonNode.Parse(text) as JsonObject ?? throw new ArmException(400, "InvalidRequestContent", "The body is not a JSON object.");
            }

            var answer = Route(context, request, body);
            await WriteAsync(context, answer.Status, answer.Body);
        }
        catch (ArmException exception)
        {
            await WriteAsync(context, exception.Status, new JsonObject { ["error"] = new JsonObject { ["code"] = exception.Code, ["message"] = exception.Message } });
        }
        catch (JsonException exception)
        {
            await WriteAsync(context, 400, new JsonObject { ["error"] = new JsonObject { ["code"] = "InvalidRequestContent", ["message"] = exception.Message } });
        }
    }

    private (int Status, JsonObject? Body) Route(HttpContext context, HttpRequest request, JsonObject? body)
    {
        var path = request.Path.Value!.TrimEnd('/');
        var apiVersion = request.Query["api-version"].ToString();
        if (apiVersion.Length == 0)
        {
            throw new ArmException(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.");
        }

        if (GroupPath().Match(path) is { Success: true } groupMatch)
        {
            return request.Method switch
            {
                "GET" => (200, Group(groupMatch.Groups[1].Value)),
                "PUT" => PutGroup(groupMatch.Groups[1].Value, body),
                "DELETE" => DeleteGroup(context, groupMatch.Groups[1].Value),
                _ => throw new ArmException(405, "MethodNotAllowed", "Not allowed."),
            };
        }

        if (AppPath().Match(path) is { Success: true } appMatch)
        {
            if (!s_appsApiVersions.Contains(apiVersion))
            {
                throw new ArmException(400, "NoRegisteredProviderFound",
                    $"No registered resource provider found for location and API version '{apiVersion}' and type 'containerApps'. The supported api-versions are '{string.Join(", ", s_appsApiVersions)}'.");
            }

            var (group, name, action) = (appMatch.Groups[1].Value, appMatch.Groups[2].Value, appMatch.Groups[3].Value);
            return (request.Method, action) switch
            {
                ("GET", "") => (200, GetApp(group, name)),
                ("PUT", "") => PutApp(context, group, name, body ?? throw new ArmException(400, "InvalidRequestContent", "A body is required.")),
                ("DELETE", "") => DeleteApp(context, group, name),
                ("POST", "start" or "stop") => AppAction(context, group, name, action),
                _ => throw new ArmException(405, "MethodNotAllowed", "Not allowed."),
            };
        }

        if (OperationPath().Match(path) is { Success: true } operationMatch)
        {
            return OperationStatus(context, operationMatch.Groups[1].Value, asLocation: path.Contains("/operationresults/", StringComparison.OrdinalIgnoreCase));
        }

        throw new ArmException(404, "NotFound", $"No route for {request.Method} {path}.");
    }

    private void Authenticate(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        bool known;
        lock (_gate)
        {
            known = header.StartsWith("Bearer ", StringComparison.Ordinal) && _tokens.Contains(header["Bearer ".Length..]);
        }

        if (!known)
        {
            throw new ArmException(401, header.Length == 0 ? "AuthenticationFailed" : "InvalidAuthenticationToken",
                header.Length == 0 ? "Authentication failed. The 'Authorization' header is missing." : "The access token is invalid.");
        }
    }

    private JsonObject IdentityToken(HttpRequest request)
    {
        if (request.Headers["X-IDENTITY-HEADER"] != IdentityHeader)
        {
            throw new ArmException(401, "Unauthorized", "X-IDENTITY-HEADER is missing or wrong.");
        }

        return new JsonObject
        {
            ["access_token"] = IssueToken(),
            ["expires_on"] = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture),
            ["resource"] = request.Query["resource"].ToString(),
            ["token_type"] = "Bearer",
            ["client_id"] = request.Query["client_id"].ToString(),
        };
    }

    private static async Task WriteAsync(HttpContext context, int status, JsonObject? body)
    {
        context.Response.StatusCode = status;
        if (body is not null)
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(body.ToJsonString());
        }
    }

    [GeneratedRegex("^/subscriptions/" + SubscriptionId + "/resourcegroups/([^/]+)$", RegexOptions.IgnoreCase)]
    private static partial Regex GroupPath();

    [GeneratedRegex("^/subscriptions/" + SubscriptionId + "/resourcegroups/([^/]+)/providers/Microsoft\\.App/containerApps/([^/]+)(?:/(start|stop))?$", RegexOptions.IgnoreCase)]
    private static partial Regex AppPath();

    [GeneratedRegex("^/subscriptions/" + SubscriptionId + "/(?:providers/Microsoft\\.App/locations/[^/]+/containerappOperationStatuses|operationresults)/([^/]+)$", RegexOptions.IgnoreCase)]
    private static partial Regex OperationPath();
}

/// <summary>An ARM error: the HTTP status and the body's <c>error.code</c> and <c>error.message</c>.</summary>
public sealed class ArmException(int status, string code, string message) : Exception(message)
{
    public int Status { get; } = status;
    public string Code { get; } = code;
}
