using System.Net;
using System.Text.Json.Nodes;
using ControlPlane.Tests.Support;

namespace ControlPlane.Tests.EndToEnd;

/// <summary>
/// The control plane's database restored from a backup taken before later operations: its instances know an older
/// generation than the backend has deployed. The mismatch is reported on the instance, and what the control plane
/// asks is carried out again, a delete included; nothing is answered "up to date" for the lower generation.
/// </summary>
public sealed class RestoredDatabaseTests : IAsyncLifetime
{
    private readonly TestDirectory _directory = new();
    private readonly TestDirectory _backup = new();
    private ControlPlaneProcess _host = null!;

    public async Task InitializeAsync()
    {
        _host = new ControlPlaneProcess(_directory.Path, Ports.InstanceRange());
        await _host.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        _directory.Dispose();
        _backup.Dispose();
    }

    [Fact]
    public async Task After_a_restore_to_an_older_generation_the_mismatch_is_reported_and_a_delete_really_deletes()
    {
        var api = _host.CreateAdminApi();
        var tenantId = (string)(await api.CreateTenantAsync("Restored Ltd", "team"))["id"]!;
        var instanceId = (string)(await api.CreateRunningInstanceAsync(tenantId, "restored"))["id"]!;
        var instanceDirectory = Path.Combine(_directory.Path, "instances", instanceId);

        // The backup: the database as it was after the create (generation 1).
        await _host.StopAsync();
        CopyDatabase(_directory.Path, _backup.Path);
        await _host.StartAsync();
        api = _host.CreateAdminApi();

        // Later operations the backup does not know: the backend deploys generations 2 and 3.
        foreach (var verb in new[] { ":stop", ":start" })
        {
            using var response = await api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/instances/{instanceId}{verb}");
            var operation = await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.Accepted);
            Assert.Equal("succeeded", (string?)(await api.WaitForOperationAsync(tenantId, (string)operation["id"]!))["status"]);
        }

        var deployed = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(instanceDirectory, "deployment.json")))!;
        Assert.Equal(3, (long)deployed["Generation"]!);

        // The restore.
        await _host.StopAsync();
        CopyDatabase(_backup.Path, _directory.Path);
        await _host.StartAsync();
        api = _host.CreateAdminApi();

        var events = await WaitForEventAsync(api, tenantId, instanceId, "generation-behind");
        Assert.Contains("generation 3", (string)events["message"]!, StringComparison.Ordinal);
        Assert.Contains("only knew generation 1", (string)events["message"]!, StringComparison.Ordinal);

        using (var delete = await api.SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{tenantId}/instances/{instanceId}"))
        {
            var operation = await ControlPlaneApi.ExpectAsync(delete, HttpStatusCode.Accepted);
            Assert.Equal("succeeded", (string?)(await api.WaitForOperationAsync(tenantId, (string)operation["id"]!))["status"]);
        }

        Assert.False(Directory.Exists(instanceDirectory), "the delete answered success but the instance is still deployed");
        Assert.Empty(HostedProcesses.Under(instanceDirectory));
    }

    private static async Task<JsonNode> WaitForEventAsync(ControlPlaneApi api, string tenantId, string instanceId, string kind)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var page = await api.GetAsync($"/api/v1/tenants/{tenantId}/instances/{instanceId}/events");
            if (page["items"]!.AsArray().FirstOrDefault(e => (string?)e!["kind"] == kind) is { } found)
            {
                return found;
            }

            Assert.True(DateTime.UtcNow < deadline, $"no {kind} event: {page.ToJsonString()}");
            await Task.Delay(200);
        }
    }

    /// <summary>The embedded database with its WAL, as a file-level backup of a stopped control plane takes it.</summary>
    private static void CopyDatabase(string from, string to)
    {
        foreach (var suffix in new[] { "", "-wal", "-shm" })
        {
            var target = Path.Combine(to, "controlplane.db" + suffix);
            File.Delete(target);
            var source = Path.Combine(from, "controlplane.db" + suffix);
            if (File.Exists(source))
            {
                File.Copy(source, target);
            }
        }
    }
}
