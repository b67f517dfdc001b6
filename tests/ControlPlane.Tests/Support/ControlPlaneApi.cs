using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace ControlPlane.Tests.Support;

/// <summary>The REST API as a client sees it: JSON in, JSON out, no server types.</summary>
public sealed class ControlPlaneApi(HttpClient http)
{
    private static readonly string[] s_terminalStatuses = ["succeeded", "failed", "cancelled"];

    public HttpClient Http => http;

    public static ControlPlaneApi WithKey(HttpClient http, string apiKey)
    {
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        return new ControlPlaneApi(http);
    }

    public async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, object? body = null, string? idempotencyKey = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        return await http.SendAsync(request);
    }

    public async Task<JsonNode> CreateTenantAsync(string name = "Acme Corp", string plan = "enterprise")
    {
        using var response = await SendAsync(HttpMethod.Post, "/api/v1/tenants", new { name, plan });
        return await ExpectAsync(response, HttpStatusCode.Created);
    }

    /// <summary>Starts creating an instance; returns the operation from the 202.</summary>
    public async Task<JsonNode> CreateInstanceAsync(string tenantId, string name, string size = "small", string? idempotencyKey = null)
    {
        using var response = await SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/instances", new { name, product = "garnet", size }, idempotencyKey);
        return await ExpectAsync(response, HttpStatusCode.Accepted);
    }

    /// <summary>
    /// GETs <paramref name="path"/> and expects 200. A 429 is waited out for its Retry-After and asked again, as a
    /// well-behaved client does: tests that poll many operations at once share one key's rate limit.
    /// </summary>
    public async Task<JsonNode> GetAsync(string path)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            using var response = await http.GetAsync(path);
            if (response.StatusCode != HttpStatusCode.TooManyRequests || DateTime.UtcNow > deadline)
            {
                return await ExpectAsync(response, HttpStatusCode.OK);
            }

            await Task.Delay(response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1));
        }
    }

    /// <summary>Every item of a paged list, following <c>nextPageToken</c> to the last page.</summary>
    public async Task<List<JsonNode>> ListAllAsync(string path)
    {
        var items = new List<JsonNode>();
        string? token = null;
        do
        {
            var separator = path.Contains('?', StringComparison.Ordinal) ? '&' : '?';
            var page = await GetAsync(token is null ? path : $"{path}{separator}pageToken={Uri.EscapeDataString(token)}");
            items.AddRange(page["items"]!.AsArray().Select(item => item!));
            token = (string?)page["nextPageToken"];
        }
        while (token is not null);

        return items;
    }

    public Task<JsonNode> GetInstanceAsync(string tenantId, string instanceId) => GetAsync($"/api/v1/tenants/{tenantId}/instances/{instanceId}");

    public Task<JsonNode> GetOperationAsync(string tenantId, string operationId) => GetAsync($"/api/v1/tenants/{tenantId}/operations/{operationId}");

    public Task<JsonNode> GetCredentialsAsync(string tenantId, string instanceId) => GetAsync($"/api/v1/tenants/{tenantId}/instances/{instanceId}/credentials");

    /// <summary>Polls an operation until it ends; fails the test if it does not end in time.</summary>
    public async Task<JsonNode> WaitForOperationAsync(string tenantId, string operationId, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            var operation = await GetOperationAsync(tenantId, operationId);
            if (s_terminalStatuses.Contains((string?)operation["status"]))
            {
                return operation;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Operation {operationId} did not finish: {operation.ToJsonString()}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Polls an instance until <paramref name="condition"/> holds; fails the test if it does not in time.</summary>
    public async Task<JsonNode> WaitForInstanceAsync(string tenantId, string instanceId, Func<JsonNode, bool> condition, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            var instance = await GetInstanceAsync(tenantId, instanceId);
            if (condition(instance))
            {
                return instance;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Instance {instanceId} did not reach the expected condition: {instance.ToJsonString()}");
            }

            await Task.Delay(100);
        }
    }

    /// <summary>Creates an instance and waits until the create operation succeeded; returns the instance.</summary>
    public async Task<JsonNode> CreateRunningInstanceAsync(string tenantId, string name, string size = "small", TimeSpan? timeout = null)
    {
        var operation = await CreateInstanceAsync(tenantId, name, size);
        var finished = await WaitForOperationAsync(tenantId, (string)operation["id"]!, timeout);
        Assert.True((string?)finished["status"] == "succeeded", finished.ToJsonString());
        return await GetInstanceAsync(tenantId, (string)operation["instanceId"]!);
    }

    public static async Task<JsonNode> ExpectAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"Expected {(int)expected} but got {(int)response.StatusCode}: {text}");
        return JsonNode.Parse(text)!;
    }

    /// <summary>Asserts an error answer: the status, problem+json, and the stable problem type.</summary>
    public static async Task<JsonNode> ExpectProblemAsync(HttpResponseMessage response, HttpStatusCode expected, string? type = null)
    {
        var problem = await ExpectAsync(response, expected);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal((int)expected, (int?)problem["status"]);
        Assert.False(string.IsNullOrEmpty((string?)problem["title"]), problem.ToJsonString());
        if (type is not null)
        {
            Assert.Equal($"urn:controlplane:problem:{type}", (string?)problem["type"]);
        }

        return problem;
    }
}
