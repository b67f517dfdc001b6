using System.Net;
using System.Security.Cryptography.X509Certificates;
using FakeArm;

namespace Provisioner.Cloud.Tests.Azure;

/// <summary>The fake refuses what Resource Manager refuses, so the backend is not passing against a kinder one.</summary>
public sealed class FakeArmRulesTests : IAsyncLifetime
{
    private readonly string _root = Directory.CreateTempSubdirectory("arm-rules-").FullName;
    private FakeArmServer _arm = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _arm = await FakeArmServer.StartAsync(_root);
        var root = X509Certificate2.CreateFromPem(await File.ReadAllTextAsync(_arm.CertificateFile));
        _http = new HttpClient(new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, certificate, _, _) => certificate?.Thumbprint == root.Thumbprint,
        })
        { BaseAddress = new Uri(_arm.BaseUrl) };
        _http.DefaultRequestHeaders.Authorization = new("Bearer", _arm.IssueToken());
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _arm.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public async Task Reads_beyond_the_subscriptions_bucket_are_answered_429_with_retry_after_by_default()
    {
        var path = $"/subscriptions/{FakeArmServer.SubscriptionId}/resourceGroups/nowhere?api-version=2022-09-01";
        var first = await _http.GetAsync(path);
        Assert.Equal(HttpStatusCode.NotFound, first.StatusCode);
        Assert.Equal("249", first.Headers.GetValues("x-ms-ratelimit-remaining-subscription-reads").Single());

        HttpResponseMessage? throttled = null;
        for (var sent = 1; sent < 1000 && throttled is null; sent++)
        {
            var response = await _http.GetAsync(path);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                throttled = response;
            }
        }

        Assert.NotNull(throttled);
        Assert.True(throttled.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        Assert.Contains("SubscriptionRequestsThrottled", await throttled.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
