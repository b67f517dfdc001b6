using System.Net;
using ControlPlane.Tests.Support;

namespace ControlPlane.Tests.Api;

/// <summary>What a client sees when the database refuses a write: 503 problem+json with Retry-After, nothing changed, and a retry that works.</summary>
public sealed class StoreUnavailableTests : IAsyncLifetime
{
    private readonly ControlPlaneFactory _factory = new();
    private ControlPlaneApi _api = null!;
    private string _tenantId = "";

    public async Task InitializeAsync()
    {
        _factory.Settings["ControlPlane:Database:BusyTimeout"] = "00:00:00.300";
        _api = _factory.CreateAdminApi();
        _tenantId = (string)(await _api.CreateTenantAsync())["id"]!;
    }

    public async Task DisposeAsync() => await _factory.DisposeAsync();

    [Fact]
    public async Task Create_while_the_database_is_locked_is_503_with_retry_after_and_a_retry_with_its_key_creates_one_instance()
    {
        var path = $"/api/v1/tenants/{_tenantId}/instances";
        var body = new { name = "after-lock", product = "garnet", size = "small" };
        var key = Guid.NewGuid().ToString();

        using (await SqliteWriteLock.TakeAsync(Path.Combine(_factory.DataDirectory.Path, "controlplane.db")))
        {
            using var refused = await _api.SendAsync(HttpMethod.Post, path, body, key);

            await ControlPlaneApi.ExpectProblemAsync(refused, HttpStatusCode.ServiceUnavailable, "store-unavailable");
            Assert.Equal(TimeSpan.FromSeconds(2), refused.Headers.RetryAfter?.Delta);
            Assert.Empty((await _api.GetAsync(path))["items"]!.AsArray());
        }

        using var retried = await _api.SendAsync(HttpMethod.Post, path, body, key);

        var operation = await ControlPlaneApi.ExpectAsync(retried, HttpStatusCode.Accepted);
        Assert.Equal("succeeded", (string?)(await _api.WaitForOperationAsync(_tenantId, (string)operation["id"]!))["status"]);
        Assert.Single((await _api.GetAsync(path))["items"]!.AsArray());
        Assert.Single(HostedProcesses.Under(Path.Combine(_factory.DataDirectory.Path, "instances")));
    }

    [Fact]
    public async Task Stop_while_the_database_is_locked_is_503_and_the_instance_keeps_running_until_a_retry()
    {
        var instance = await _api.CreateRunningInstanceAsync(_tenantId, "keeps-running");
        var instanceId = (string)instance["id"]!;
        var stop = $"/api/v1/tenants/{_tenantId}/instances/{instanceId}:stop";

        using (await SqliteWriteLock.TakeAsync(Path.Combine(_factory.DataDirectory.Path, "controlplane.db")))
        {
            using var refused = await _api.SendAsync(HttpMethod.Post, stop);

            await ControlPlaneApi.ExpectProblemAsync(refused, HttpStatusCode.ServiceUnavailable, "store-unavailable");
            var during = await _api.GetInstanceAsync(_tenantId, instanceId);
            Assert.Equal("Running", (string?)during["state"]);
            Assert.Null(during["activeOperationId"]);
        }

        Assert.Single(HostedProcesses.Under(_factory.InstanceDirectory(instanceId)));
        using var retried = await _api.SendAsync(HttpMethod.Post, stop);
        var operation = await ControlPlaneApi.ExpectAsync(retried, HttpStatusCode.Accepted);
        Assert.Equal("succeeded", (string?)(await _api.WaitForOperationAsync(_tenantId, (string)operation["id"]!))["status"]);
        Assert.Equal("Stopped", (string?)(await _api.GetInstanceAsync(_tenantId, instanceId))["state"]);
    }
}
