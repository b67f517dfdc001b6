using System.Net;
using System.Text.Json.Nodes;
using ControlPlane.Auditing;
using ControlPlane.Identity;
using ControlPlane.Security;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace ControlPlane.Tests.Auditing;

/// <summary>One control plane for a test class's audit tests, with its admin key, tenant keys, and the audit log as stored.</summary>
public sealed class AuditedHost : IAsyncLifetime
{
    public ControlPlaneFactory Factory { get; } = new();

    public ControlPlaneApi Admin { get; private set; } = null!;

    /// <summary>How the audit log names the admin key.</summary>
    public string AdminActor { get; private set; } = "";

    public async Task InitializeAsync()
    {
        Admin = Factory.CreateAdminApi();
        var secret = File.ReadAllText(Path.Combine(Factory.DataDirectory.Path, "admin-api-key")).Trim();
        var key = await Factory.Services.GetRequiredService<ApiKeyStore>().FindAsync(secret);
        AdminActor = Actor(key!.Id, key.Name);
    }

    public async Task DisposeAsync() => await Factory.DisposeAsync();

    public static string Actor(string keyId, string keyName) => $"apikey:{keyId} ({keyName})";

    /// <summary>A key of <paramref name="tenantId"/> (or, with a role of the platform, none), and its actor.</summary>
    public async Task<(ControlPlaneApi Api, string Actor)> KeyAsync(string name, string role, string? tenantId)
    {
        var (key, secret) = await Factory.Services.GetRequiredService<ApiKeyStore>().CreateAsync(name, role, tenantId);
        return (ControlPlaneApi.WithKey(Factory.CreateClient(), secret), Actor(key.Id, key.Name));
    }

    /// <summary>The logical records (an intent with its outcome counts once) of <paramref name="action"/>, newest first.</summary>
    public async Task<IReadOnlyList<AuditRecord>> RecordsAsync(string action)
    {
        var page = await Factory.Services.GetRequiredService<AuditQueries>()
            .PageAsync(new AuditFilter { Action = action }, new ControlPlane.Api.PageRequest { Size = 100 });
        return page.Items;
    }

    /// <summary>A tenant with a running instance, one of its operations and an announced maintenance window.</summary>
    public async Task<EndpointContext> PrepareAsync(string name)
    {
        var tenantId = (string)(await Admin.CreateTenantAsync(name))["id"]!;
        var instance = await Admin.CreateRunningInstanceAsync(tenantId, "audited");
        var now = DateTimeOffset.UtcNow;
        var context = new EndpointContext(tenantId, (string)instance["id"]!, (string)instance["lastOperationId"]!, "", now);
        var (path, body) = EndpointCatalog.Find("POST", "/api/v1/tenants/{tenantId}/maintenance-windows")!.Request(context);
        using var announced = await Admin.SendAsync(HttpMethod.Post, path, body);
        var window = await ControlPlaneApi.ExpectAsync(announced, HttpStatusCode.Created);

        // SSO as an owner set it up earlier (through the store: the API would ask a real provider's discovery document).
        await Factory.Services.GetRequiredService<SsoSettingsStore>().SaveAsync(tenantId, new SsoSettingsChange(
            "http://127.0.0.1:9/", "controlplane", "prepared-secret", [$"prepared-{tenantId}.example.com"], Roles.Find(Roles.Viewer)!, Enabled: true));
        return context with
        {
            WindowId = (string)window["id"]!,
            KeyId = (string)(await PostAsync($"/api/v1/tenants/{tenantId}/api-keys", new { name = "prepared", role = "viewer" }))["key"]!["id"]!,
            UserId = (string)(await PostAsync($"/api/v1/tenants/{tenantId}/members", new { email = $"member-{tenantId}@example.com", role = "viewer" }))["member"]!["userId"]!,
            PlatformKeyId = (string)(await PostAsync("/api/v1/platform/api-keys", new { name = "prepared", role = "sre" }))["key"]!["id"]!,
            PlatformUserId = (string)(await PostAsync("/api/v1/platform/members", new { email = $"sre-{tenantId}@example.com", role = "sre" }))["member"]!["userId"]!,
        };
    }

    private async Task<JsonNode> PostAsync(string path, object body)
    {
        using var response = await Admin.SendAsync(HttpMethod.Post, path, body);
        return await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.Created);
    }

    /// <summary>Waits until the instance runs no operation (or is gone), so the next request meets it at rest.</summary>
    public async Task SettleAsync(EndpointContext context)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            using var response = await Admin.Http.GetAsync($"/api/v1/tenants/{context.TenantId}/instances/{context.InstanceId}");
            if (response.StatusCode != HttpStatusCode.OK
                || JsonNode.Parse(await response.Content.ReadAsStringAsync())?["activeOperationId"] is null)
            {
                return;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"Instance {context.InstanceId} did not settle.");
    }
}
