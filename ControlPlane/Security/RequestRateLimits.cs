using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Threading.RateLimiting;
using ControlPlane.Api;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace ControlPlane.Security;

/// <summary>
/// How fast one caller may call the API (section <c>RateLimits</c>), as token buckets: a burst, refilled at a steady
/// rate per second. Every request draws on its client address's bucket, and on its API key's (the presented key, by
/// hash) or, without a key, on the address's small bucket for anonymous calls. Limits apply before the key is looked
/// up, so a flood of made-up keys from one address reaches the key store no faster than the address's rate.
/// </summary>
public sealed class RequestRateLimitOptions
{
    public const string SectionName = "RateLimits";

    public bool Enabled { get; set; } = true;

    public int PerKeyPerSecond { get; set; } = 100;

    public int PerKeyBurst { get; set; } = 200;

    public int PerAddressPerSecond { get; set; } = 300;

    public int PerAddressBurst { get; set; } = 600;

    public int UnauthenticatedPerSecond { get; set; } = 10;

    public int UnauthenticatedBurst { get; set; } = 30;

    /// <summary>Failed authentications one client address may make per minute (bad or revoked keys, wrong passwords).</summary>
    public int FailedAuthenticationsPerMinute { get; set; } = 20;

    /// <summary>Failed authentications one client address may make at once before it must wait.</summary>
    public int FailedAuthenticationsBurst { get; set; } = 20;
}

public sealed class RequestRateLimitOptionsValidator : IValidateOptions<RequestRateLimitOptions>
{
    public ValidateOptionsResult Validate(string? name, RequestRateLimitOptions options)
    {
        var failures = new[]
            {
                (nameof(options.PerKeyPerSecond), options.PerKeyPerSecond),
                (nameof(options.PerKeyBurst), options.PerKeyBurst),
                (nameof(options.PerAddressPerSecond), options.PerAddressPerSecond),
                (nameof(options.PerAddressBurst), options.PerAddressBurst),
                (nameof(options.UnauthenticatedPerSecond), options.UnauthenticatedPerSecond),
                (nameof(options.UnauthenticatedBurst), options.UnauthenticatedBurst),
                (nameof(options.FailedAuthenticationsPerMinute), options.FailedAuthenticationsPerMinute),
                (nameof(options.FailedAuthenticationsBurst), options.FailedAuthenticationsBurst),
            }
            .Where(setting => setting.Item2 < 1)
            .Select(setting => $"{RequestRateLimitOptions.SectionName}:{setting.Item1} is {setting.Item2}; it must be at least 1 (set {RequestRateLimitOptions.SectionName}:Enabled=false to turn limiting off).")
            .ToList();
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

public static class RequestRateLimits
{
    public static IServiceCollection AddRequestRateLimits(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<RequestRateLimitOptions>().Bind(configuration.GetSection(RequestRateLimitOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<RequestRateLimitOptions>, RequestRateLimitOptionsValidator>();
        services.AddRateLimiter(_ => { });
        services.AddSingleton<AuthenticationFailures>();
        // The buckets are built from the validated settings, not from a second reading of the configuration.
        services.AddOptions<RateLimiterOptions>().Configure<IOptions<RequestRateLimitOptions>>((limiter, options) =>
        {
            var settings = options.Value;
            if (!settings.Enabled)
            {
                return;
            }

            limiter.GlobalLimiter = PartitionedRateLimiter.CreateChained(
                PartitionedRateLimiter.Create<HttpContext, string>(context => PresentedKey(context) is { } key
                    ? Bucket("key:" + key, settings.PerKeyBurst, settings.PerKeyPerSecond)
                    : Bucket("anonymous:" + Address(context), settings.UnauthenticatedBurst, settings.UnauthenticatedPerSecond)),
                PartitionedRateLimiter.Create<HttpContext, string>(context =>
                    Bucket("address:" + Address(context), settings.PerAddressBurst, settings.PerAddressPerSecond)));
            limiter.OnRejected = RejectAsync;
        });
        return services;
    }

    /// <summary>Refuses a request that presents credentials from an address that has failed too often (see <see cref="AuthenticationFailures"/>).</summary>
    public static IApplicationBuilder UseAuthenticationFailureLimit(this IApplicationBuilder app)
    {
        var failures = app.ApplicationServices.GetRequiredService<AuthenticationFailures>();
        return app.Use(async (context, next) =>
        {
            if (context.Request.Headers.Authorization.Count > 0 && failures.MustWait(Address(context)) is { } wait)
            {
                await TooManyAsync(context, wait, "too-many-failed-authentications", "Too many failed sign-ins", "This address presented too many invalid credentials");
                return;
            }

            await next(context);
        });
    }

    private static RateLimitPartition<string> Bucket(string partition, int burst, int perSecond) =>
        RateLimitPartition.GetTokenBucketLimiter(partition, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = burst,
            TokensPerPeriod = perSecond,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        });

    /// <summary>The hash of the bearer key the request presents, valid or not; null without one.</summary>
    private static string? PresentedKey(HttpContext context)
    {
        string? header = context.Request.Headers.Authorization;
        return header is { Length: > 7 } && header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
            ? Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(header[7..].Trim())))
            : null;
    }

    public static string Address(HttpContext context) => (context.Connection.RemoteIpAddress ?? IPAddress.None).ToString();

    private static ValueTask RejectAsync(OnRejectedContext rejected, CancellationToken cancellationToken)
    {
        var wait = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter : TimeSpan.FromSeconds(1);
        return new(TooManyAsync(rejected.HttpContext, wait, "rate-limited", "Too many requests", "This API key or address sent more requests than it may"));
    }

    /// <summary>429 problem+json, with <c>Retry-After</c> in whole seconds (at least 1).</summary>
    public static async Task TooManyAsync(HttpContext context, TimeSpan wait, string type, string title, string why)
    {
        var seconds = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));
        context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
        context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        await context.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(ProblemResponses.Context(
            context, StatusCodes.Status429TooManyRequests, type, title, $"{why}; retry after {seconds} s."));
    }
}
