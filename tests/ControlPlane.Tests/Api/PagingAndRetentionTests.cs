using System.Net;
using System.Text.Json.Nodes;
using ControlPlane.Tests.Support;

namespace ControlPlane.Tests.Api;

/// <summary>Every list pages with opaque tokens bound to their list; history is bounded and deleted instances go when their retention ends.</summary>
public sealed class PagingAndRetentionTests : IAsyncLifetime
{
    private static readonly string[] s_pagedLists =
    [
        "/api/v1/tenants",
        "/api/v1/tenants/{tenantId}/instances",
        "/api/v1/tenants/{tenantId}/instances/{instanceId}/operations",
        "/api/v1/tenants/{tenantId}/instances/{instanceId}/events",
        "/api/v1/tenants/{tenantId}/sla/assessments",
        "/api/v1/tenants/{tenantId}/maintenance-windows",
        "/api/v1/sla/assessments",
    ];

    private readonly ControlPlaneFactory _factory = new();
    private ControlPlaneApi _api = null!;

    public Task InitializeAsync()
    {
        _factory.Settings["Retention:Operations"] = "2";
        _factory.Settings["Retention:OperationAge"] = "00:00:00";
        _factory.Settings["Retention:DeletedInstances"] = "00:00:00";
        _api = _factory.CreateAdminApi();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _factory.DisposeAsync();

    [Fact]
    public async Task Tenants_list_pages_in_a_stable_order_until_a_last_page_without_a_token()
    {
        var created = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            created.Add((string)(await _api.CreateTenantAsync($"Paged {i}"))["id"]!);
        }

        var seen = new List<string>();
        var pages = 0;
        string? token = null;
        do
        {
            var page = await _api.GetAsync("/api/v1/tenants?pageSize=2" + (token is null ? "" : $"&pageToken={token}"));
            var items = page["items"]!.AsArray();
            Assert.True(items.Count <= 2, page.ToJsonString());
            seen.AddRange(items.Select(item => (string)item!["id"]!));
            token = (string?)page["nextPageToken"];
            pages++;
        }
        while (token is not null);

        Assert.Equal(3, pages);
        Assert.Equal(created.Order(StringComparer.Ordinal), seen.Order(StringComparer.Ordinal));
        Assert.Equal(seen.Count, seen.Distinct().Count());
    }

    [Fact]
    public async Task A_page_token_of_another_tenant_is_404_and_bad_paging_input_is_400()
    {
        var tenantA = (string)(await _api.CreateTenantAsync("Tenant A"))["id"]!;
        var tenantB = (string)(await _api.CreateTenantAsync("Tenant B"))["id"]!;
        var instance = (string)(await _api.CreateRunningInstanceAsync(tenantA, "paged"))["id"]!;
        var firstPage = await _api.GetAsync($"/api/v1/tenants/{tenantA}/instances/{instance}/events?pageSize=1");
        var token = (string?)firstPage["nextPageToken"];
        Assert.NotNull(token);

        using var otherTenant = await _api.Http.GetAsync($"/api/v1/tenants/{tenantB}/instances?pageToken={token}");
        using var tooLarge = await _api.Http.GetAsync($"/api/v1/tenants/{tenantA}/instances?pageSize=101");
        using var zero = await _api.Http.GetAsync($"/api/v1/tenants/{tenantA}/instances/{instance}/operations?pageSize=0");
        using var forged = await _api.Http.GetAsync($"/api/v1/tenants/{tenantA}/instances?pageToken=not-a-token");

        await ControlPlaneApi.ExpectProblemAsync(otherTenant, HttpStatusCode.NotFound);
        Assert.NotNull((await ControlPlaneApi.ExpectProblemAsync(tooLarge, HttpStatusCode.BadRequest))["errors"]!["pageSize"]);
        Assert.NotNull((await ControlPlaneApi.ExpectProblemAsync(zero, HttpStatusCode.BadRequest))["errors"]!["pageSize"]);
        Assert.NotNull((await ControlPlaneApi.ExpectProblemAsync(forged, HttpStatusCode.BadRequest))["errors"]!["pageToken"]);
        var secondPage = await _api.GetAsync($"/api/v1/tenants/{tenantA}/instances/{instance}/events?pageSize=1&pageToken={token}");
        Assert.True((long)secondPage["items"]![0]!["sequence"]! < (long)firstPage["items"]![0]!["sequence"]!, "events are listed newest first");
    }

    [Fact]
    public async Task Operations_beyond_retention_are_forgotten_and_a_deleted_instance_goes_when_its_retention_ends()
    {
        var tenantId = (string)(await _api.CreateTenantAsync())["id"]!;
        var created = await _api.CreateInstanceAsync(tenantId, "retained");
        var instanceId = (string)created["instanceId"]!;
        await _api.WaitForOperationAsync(tenantId, (string)created["id"]!);
        await RunAsync(tenantId, instanceId, ":stop");
        await RunAsync(tenantId, instanceId, ":start");

        var operations = (await _api.GetAsync($"/api/v1/tenants/{tenantId}/instances/{instanceId}/operations"))["items"]!.AsArray();
        Assert.Equal(["start", "stop"], operations.Select(o => (string?)o!["type"]));
        using (var forgotten = await _api.Http.GetAsync($"/api/v1/tenants/{tenantId}/operations/{created["id"]}"))
        {
            await ControlPlaneApi.ExpectProblemAsync(forgotten, HttpStatusCode.NotFound);
        }

        using var delete = await _api.SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{tenantId}/instances/{instanceId}");
        await _api.WaitForOperationAsync(tenantId, (string)(await ControlPlaneApi.ExpectAsync(delete, HttpStatusCode.Accepted))["id"]!);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        HttpStatusCode status;
        do
        {
            await Task.Delay(250);
            using var read = await _api.Http.GetAsync($"/api/v1/tenants/{tenantId}/instances/{instanceId}");
            status = read.StatusCode;
        }
        while (status == HttpStatusCode.OK && DateTime.UtcNow < deadline);

        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Empty((await _api.GetAsync($"/api/v1/tenants/{tenantId}/instances?includeDeleted=true"))["items"]!.AsArray());
        Assert.Empty(HostedProcesses.Under(_factory.InstanceDirectory(instanceId)));

        // The system's own changes are in the audit log, once each: every operation's end, and the removal of the state.
        var systemRecords = (await _api.ListAllAsync($"/api/v1/tenants/{tenantId}/audit?actor=system&target={instanceId}"))
            .Select(record => ((string?)record["action"], (string?)record["outcome"]))
            .Order()
            .ToList();
        Assert.Equal(
            [("instance.create.complete", "succeeded"), ("instance.delete.complete", "succeeded"), ("instance.start.complete", "succeeded"),
             ("instance.state.remove", "succeeded"), ("instance.stop.complete", "succeeded")],
            systemRecords);
    }

    [Fact]
    public async Task The_OpenAPI_document_gives_every_list_its_page_size_and_token()
    {
        var document = await _api.GetAsync("/openapi/v1.json");

        foreach (var path in s_pagedLists)
        {
            var parameters = document["paths"]![path]?["get"]?["parameters"]?.AsArray();
            Assert.True(parameters is not null, $"{path} is not in the OpenAPI document or has no parameters.");
            var names = parameters.Select(parameter => (string?)parameter!["name"]).ToList();
            Assert.Contains("pageSize", names);
            Assert.Contains("pageToken", names);
        }
    }

    private async Task RunAsync(string tenantId, string instanceId, string verb)
    {
        using var response = await _api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/instances/{instanceId}{verb}");
        var operation = await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.Accepted);
        Assert.Equal("succeeded", (string?)(await _api.WaitForOperationAsync(tenantId, (string)operation["id"]!))["status"]);
    }
}
