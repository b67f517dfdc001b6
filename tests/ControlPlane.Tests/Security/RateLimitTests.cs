using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using ControlPlane.Tests.Support;

namespace ControlPlane.Tests.Security;

public sealed class RateLimitTests
{
    [Fact]
    public async Task A_key_or_an_anonymous_caller_over_its_rate_gets_a_429_problem_with_Retry_After_and_health_checks_never_do()
    {
        using var factory = new ControlPlaneFactory();
        factory.Settings["RateLimits:PerKeyBurst"] = "5";
        factory.Settings["RateLimits:PerKeyPerSecond"] = "1";
        factory.Settings["RateLimits:UnauthenticatedBurst"] = "3";
        factory.Settings["RateLimits:UnauthenticatedPerSecond"] = "1";
        using var admin = factory.CreateClient();
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", File.ReadAllText(Path.Combine(factory.DataDirectory.Path, "admin-api-key")).Trim());
        using var anonymous = factory.CreateClient();

        var byKey = await StatusesAsync(admin, "/api/v1/catalog", 8);
        var byAnonymous = await StatusesAsync(anonymous, "/api/v1/catalog", 6);
        var health = await StatusesAsync(anonymous, "/healthz", 40);

        Assert.Equal(Enumerable.Repeat(HttpStatusCode.OK, 5), byKey.Take(5));
        Assert.Contains(HttpStatusCode.TooManyRequests, byKey.Skip(5));
        Assert.Equal(Enumerable.Repeat(HttpStatusCode.Unauthorized, 3), byAnonymous.Take(3));
        Assert.Contains(HttpStatusCode.TooManyRequests, byAnonymous.Skip(3));
        Assert.All(health, status => Assert.Equal(HttpStatusCode.OK, status));

        using var limited = await admin.GetAsync(new Uri("/api/v1/catalog", UriKind.Relative));
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.Equal("application/problem+json", limited.Content.Headers.ContentType?.MediaType);
        Assert.InRange(limited.Headers.RetryAfter?.Delta ?? TimeSpan.Zero, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5));
        var problem = JsonNode.Parse(await limited.Content.ReadAsStringAsync())!;
        Assert.Equal("urn:controlplane:problem:rate-limited", (string?)problem["type"]);
    }

    private static async Task<List<HttpStatusCode>> StatusesAsync(HttpClient client, string path, int count)
    {
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < count; i++)
        {
            using var response = await client.GetAsync(new Uri(path, UriKind.Relative));
            statuses.Add(response.StatusCode);
        }

        return statuses;
    }
}
