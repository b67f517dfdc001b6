using System.Net;
using ControlPlane.Tests.Support;

namespace ControlPlane.Tests.Api;

/// <summary>
/// Operations that fail end in a truthful state with a reason a person can act on. The catalog gets two
/// extra Garnet versions: one that is not installed, and one whose program crashes as it starts.
/// </summary>
public sealed class FailureTests : IAsyncLifetime
{
    private const string NotInstalled = "9.9.8";
    private const string Crashing = "9.9.9";

    private readonly ControlPlaneFactory _factory = new();
    private ControlPlaneApi _api = null!;
    private string _tenantId = "";

    public async Task InitializeAsync()
    {
        var crashingHome = Path.Combine(_factory.DataDirectory.Path, "broken-garnet");
        Directory.CreateDirectory(crashingHome);
        await File.WriteAllTextAsync(Path.Combine(crashingHome, "GarnetHost.dll"), "this is not an assembly");
        _factory.Settings[$"Catalog:Products:garnet:Versions:{NotInstalled}:Home"] = Path.Combine(_factory.DataDirectory.Path, "nowhere");
        _factory.Settings[$"Catalog:Products:garnet:Versions:{Crashing}:Home"] = crashingHome;
        _api = _factory.CreateAdminApi();
        _tenantId = (string)(await _api.CreateTenantAsync())["id"]!;
    }

    public async Task DisposeAsync() => await _factory.DisposeAsync();

    [Fact]
    public async Task Create_of_a_version_that_is_not_installed_fails_with_an_actionable_reason()
    {
        var operation = await CreateAsync("missing", NotInstalled);

        var finished = await _api.WaitForOperationAsync(_tenantId, (string)operation["id"]!);

        Assert.Equal("failed", (string?)finished["status"]);
        Assert.Equal("product-not-installed", (string?)finished["error"]!["code"]);
        Assert.Contains("dotnet build", (string?)finished["error"]!["message"], StringComparison.Ordinal);
        var instance = await _api.GetInstanceAsync(_tenantId, (string)operation["instanceId"]!);
        Assert.Equal("Failed", (string?)instance["state"]);
        Assert.Contains("not installed", (string?)instance["failureReason"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Create_whose_process_crashes_fails_with_its_log_and_leaves_no_process()
    {
        var operation = await CreateAsync("crashing", Crashing);
        var instanceId = (string)operation["instanceId"]!;

        var finished = await _api.WaitForOperationAsync(_tenantId, (string)operation["id"]!);

        Assert.Equal("failed", (string?)finished["status"]);
        Assert.Equal("process-exited", (string?)finished["error"]!["code"]);
        Assert.Contains("log", (string?)finished["error"]!["message"], StringComparison.Ordinal);
        Assert.Contains(finished["steps"]!.AsArray(), step => (string?)step!["status"] == "failed");
        Assert.Equal("Failed", (string?)(await _api.GetInstanceAsync(_tenantId, instanceId))["state"]);
        await WaitUntilAsync(() => HostedProcesses.Under(_factory.InstanceDirectory(instanceId)).Count == 0);
    }

    [Fact]
    public async Task Failed_instance_can_be_deleted()
    {
        var operation = await CreateAsync("to-clean-up", NotInstalled);
        await _api.WaitForOperationAsync(_tenantId, (string)operation["id"]!);

        using var delete = await _api.SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{_tenantId}/instances/{operation["instanceId"]}");
        var deleted = await _api.WaitForOperationAsync(_tenantId, (string)(await ControlPlaneApi.ExpectAsync(delete, HttpStatusCode.Accepted))["id"]!);

        Assert.Equal("succeeded", (string?)deleted["status"]);
        Assert.Equal("Deleted", (string?)(await _api.GetInstanceAsync(_tenantId, (string)operation["instanceId"]!))["state"]);
    }

    [Fact]
    public async Task Failed_upgrade_rolls_back_to_the_running_version_with_the_data()
    {
        var instance = await _api.CreateRunningInstanceAsync(_tenantId, "stable");
        var instanceId = (string)instance["id"]!;
        var credentials = await _api.GetCredentialsAsync(_tenantId, instanceId);
        await using (var connection = await GarnetClient.ConnectAsync(credentials))
        {
            await connection.GetDatabase().StringSetAsync("precious", "data");
        }

        using var upgrade = await _api.SendAsync(HttpMethod.Patch, $"/api/v1/tenants/{_tenantId}/instances/{instanceId}", new { version = Crashing });
        var operation = await ControlPlaneApi.ExpectAsync(upgrade, HttpStatusCode.Accepted);
        var finished = await _api.WaitForOperationAsync(_tenantId, (string)operation["id"]!);

        Assert.Equal("upgrade", (string?)finished["type"]);
        Assert.Equal("failed", (string?)finished["status"]);
        Assert.Contains("rolled back to version 2.2.8", (string?)finished["error"]!["message"], StringComparison.Ordinal);
        Assert.Contains(finished["steps"]!.AsArray(), step => ((string)step!["name"]!).StartsWith("Roll back:", StringComparison.Ordinal));
        var after = await _api.GetInstanceAsync(_tenantId, instanceId);
        Assert.Equal("Running", (string?)after["state"]);
        Assert.Equal("2.2.8", (string?)after["version"]);
        Assert.Equal("data", await GarnetClient.GetWhenServingAsync(credentials, "precious", TimeSpan.FromSeconds(10)));
    }

    private async Task<System.Text.Json.Nodes.JsonNode> CreateAsync(string name, string version)
    {
        using var response = await _api.SendAsync(
            HttpMethod.Post, $"/api/v1/tenants/{_tenantId}/instances", new { name, product = "garnet", version, size = "small" });
        return await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.Accepted);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "The condition did not hold within 30 s.");
            await Task.Delay(100);
        }
    }
}
