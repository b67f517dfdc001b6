using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Polly;
using Polly.Retry;

namespace ControlPlane.Cli;

/// <summary>What the API refused, from its <c>application/problem+json</c> answer.</summary>
public sealed class ApiProblemException(int status, string title, string? detail, string? type, IReadOnlyList<string> fieldErrors)
    : Exception(detail is null ? title : $"{title}: {detail}")
{
    public int Status { get; } = status;
    public string Title { get; } = title;
    public string? Detail { get; } = detail;
    public string? Type { get; } = type;
    public IReadOnlyList<string> FieldErrors { get; } = fieldErrors;
}

/// <summary>
/// The control plane's REST API over one <see cref="HttpClient"/>, with the caller's API key. Waits out <c>429</c> and
/// <c>503</c> as the API asks (<c>Retry-After</c>), and retries a request that never got an answer when repeating it
/// cannot do anything twice: reads, and writes that carry an <c>Idempotency-Key</c>.
/// </summary>
public sealed class ApiClient : IDisposable
{
    private const int MaxAttempts = 6;
    private static readonly TimeSpan LongestWait = TimeSpan.FromSeconds(30);
    private static readonly ResiliencePropertyKey<bool> Repeatable = new("controlplane.repeatable");

    private readonly HttpClient _http;
    private readonly ResiliencePipeline<HttpResponseMessage> _retries;

    public ApiClient(Uri baseAddress, string apiKey, HttpMessageHandler? handler = null)
    {
        _http = handler is null ? new HttpClient() : new HttpClient(handler);
        _http.BaseAddress = baseAddress;
        _http.Timeout = TimeSpan.FromSeconds(100);
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("controlplane-cli", typeof(ApiClient).Assembly.GetName().Version?.ToString(3)));
        _retries = new ResiliencePipelineBuilder<HttpResponseMessage>()
            .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = MaxAttempts - 1,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(500),
                ShouldHandle = arguments => ValueTask.FromResult(arguments.Outcome switch
                {
                    { Result.StatusCode: HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable } => true,
                    { Exception: HttpRequestException } => IsRepeatable(arguments.Context),
                    _ => false,
                }),
                DelayGenerator = arguments => ValueTask.FromResult(RetryAfter(arguments.Outcome.Result)),
            })
            .Build();
    }

    public Uri BaseAddress => _http.BaseAddress!;

    public Task<JsonNode?> GetAsync(string path, CancellationToken cancellationToken, IReadOnlyDictionary<string, string>? headers = null) =>
        SendAsync(HttpMethod.Get, path, null, null, cancellationToken, headers);

    /// <summary>A write; <paramref name="idempotencyKey"/> makes it safe to repeat, here and by the person re-running the command.</summary>
    public Task<JsonNode?> SendAsync(
        HttpMethod method, string path, object? body, string? idempotencyKey, CancellationToken cancellationToken, IReadOnlyDictionary<string, string>? headers = null) =>
        ReadAsync(method, path, body, idempotencyKey, headers, async (response, token) =>
        {
            var text = await response.Content.ReadAsStringAsync(token);
            return text.Length == 0 ? null : JsonNode.Parse(text);
        }, cancellationToken);

    /// <summary>Copies an answer's body (an export) to <paramref name="destination"/> as it arrives.</summary>
    public Task<long> DownloadAsync(string path, Stream destination, CancellationToken cancellationToken) =>
        ReadAsync(HttpMethod.Get, path, null, null, null, async (response, token) =>
        {
            await using var body = await response.Content.ReadAsStreamAsync(token);
            var before = destination.CanSeek ? destination.Position : 0;
            await body.CopyToAsync(destination, token);
            return destination.CanSeek ? destination.Position - before : 0;
        }, cancellationToken);

    public void Dispose() => _http.Dispose();

    private async Task<T> ReadAsync<T>(
        HttpMethod method, string path, object? body, string? idempotencyKey, IReadOnlyDictionary<string, string>? headers, Func<HttpResponseMessage, CancellationToken, Task<T>> read, CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(Repeatable, method == HttpMethod.Get || idempotencyKey is not null);
        try
        {
            using var response = await _retries.ExecuteAsync(
                async (ctx, _) =>
                {
                    using var request = new HttpRequestMessage(method, path);
                    if (body is not null)
                    {
                        request.Content = new StringContent(JsonSerializer.Serialize(body, JsonOptions.Web), Encoding.UTF8, "application/json");
                    }

                    if (idempotencyKey is not null)
                    {
                        request.Headers.Add("Idempotency-Key", idempotencyKey);
                    }

                    foreach (var (name, value) in headers ?? new Dictionary<string, string>())
                    {
                        request.Headers.Add(name, value);
                    }

                    return await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ctx.CancellationToken);
                },
                context,
                state: 0);
            if (!response.IsSuccessStatusCode)
            {
                throw await ProblemAsync(response, cancellationToken);
            }

            return await read(response, cancellationToken);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private static bool IsRepeatable(ResilienceContext context) =>
        context.Properties.TryGetValue(Repeatable, out var repeatable) && repeatable;

    private static TimeSpan? RetryAfter(HttpResponseMessage? response)
    {
        var retryAfter = response?.Headers.RetryAfter;
        var wait = retryAfter?.Delta ?? (retryAfter?.Date is { } date ? date - DateTimeOffset.UtcNow : null);
        return wait is null ? null : TimeSpan.FromTicks(Math.Clamp(wait.Value.Ticks, TimeSpan.FromMilliseconds(100).Ticks, LongestWait.Ticks));
    }

    private static async Task<ApiProblemException> ProblemAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        JsonNode? problem = null;
        try
        {
            problem = text.Length == 0 ? null : JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            // Not problem+json (a proxy's page): the status says enough.
        }

        var fieldErrors = (problem?["errors"] as JsonObject ?? [])
            .SelectMany(field => (field.Value as JsonArray ?? []).Select(message => $"{field.Key}: {message}"))
            .ToList();
        return new ApiProblemException(
            status,
            (string?)problem?["title"] ?? $"{status} {response.ReasonPhrase}",
            (string?)problem?["detail"],
            (string?)problem?["type"],
            fieldErrors);
    }
}

internal static class JsonOptions
{
    public static readonly JsonSerializerOptions Web = new(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };

    public static readonly JsonSerializerOptions Indented = new(JsonSerializerDefaults.Web) { WriteIndented = true };
}
