using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace ControlPlane.Bench;

/// <summary>The control plane's REST API as any client sees it: JSON in, JSON out, no server types.</summary>
internal sealed class ControlPlaneClient : IDisposable
{
    private readonly HttpClient _http;

    public ControlPlaneClient(Uri baseAddress, string apiKey)
    {
        _http = new HttpClient(new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) })
        {
            BaseAddress = baseAddress,
            Timeout = TimeSpan.FromSeconds(30),
        };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    /// <summary>Creates a tenant and returns its id.</summary>
    public async Task<string> CreateTenantAsync(string name, string plan, CancellationToken cancellationToken)
    {
        var tenant = await SendAsync(HttpMethod.Post, "/api/v1/tenants", new { name, plan }, HttpStatusCode.Created, cancellationToken);
        return (string)tenant["id"]!;
    }

    /// <summary>Asks for a Garnet instance; returns the create operation from the 202.</summary>
    public Task<JsonNode> CreateInstanceAsync(string tenantId, string name, string size, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/instances", new { name, product = "garnet", size }, HttpStatusCode.Accepted, cancellationToken);

    public Task<JsonNode> GetInstanceAsync(string tenantId, string instanceId, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Get, $"/api/v1/tenants/{tenantId}/instances/{instanceId}", null, HttpStatusCode.OK, cancellationToken);

    public async Task<JsonArray> ListInstancesAsync(string tenantId, CancellationToken cancellationToken) =>
        (await SendAsync(HttpMethod.Get, $"/api/v1/tenants/{tenantId}/instances", null, HttpStatusCode.OK, cancellationToken))["items"]!.AsArray();

    public Task<JsonNode> GetOperationAsync(string tenantId, string operationId, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Get, $"/api/v1/tenants/{tenantId}/operations/{operationId}", null, HttpStatusCode.OK, cancellationToken);

    /// <summary>Deletes an instance and waits until the delete operation has succeeded.</summary>
    public async Task DeleteInstanceAsync(string tenantId, string instanceId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var operation = await SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{tenantId}/instances/{instanceId}", null, HttpStatusCode.Accepted, cancellationToken);
        await WaitForOperationAsync(tenantId, (string)operation["id"]!, timeout, cancellationToken);
    }

    public Task<JsonNode> GetAsync(string path, CancellationToken cancellationToken) => SendAsync(HttpMethod.Get, path, null, HttpStatusCode.OK, cancellationToken);

    /// <summary>Polls an operation until it succeeded; throws when it ended otherwise or did not end within <paramref name="timeout"/>.</summary>
    public async Task WaitForOperationAsync(string tenantId, string operationId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        var operation = await GetOperationAsync(tenantId, operationId, cancellationToken);
        while ((string?)operation["status"] is not ("succeeded" or "failed" or "cancelled"))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new BenchmarkFailedException($"Operation {operationId} did not finish within {timeout.TotalSeconds:0} s: {operation.ToJsonString()}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), cancellationToken);
            operation = await GetOperationAsync(tenantId, operationId, cancellationToken);
        }

        if ((string?)operation["status"] != "succeeded")
        {
            throw new BenchmarkFailedException($"Operation {operationId} ended {(string?)operation["status"]}: {operation["error"]?.ToJsonString()}");
        }
    }

    public void Dispose() => _http.Dispose();

    private async Task<JsonNode> SendAsync(HttpMethod method, string path, object? body, HttpStatusCode expected, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative));
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        using var response = await _http.SendAsync(request, cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        if (response.StatusCode != expected)
        {
            throw new BenchmarkFailedException($"{method} {path} answered {(int)response.StatusCode} instead of {(int)expected}: {text}");
        }

        return JsonNode.Parse(text) ?? throw new BenchmarkFailedException($"{method} {path} answered an empty body.");
    }
}
