using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ControlPlane.Tests.Support;

/// <summary>The whole control plane in-process (API, silo, real Local backend) over a private data directory.</summary>
public sealed class ControlPlaneFactory : WebApplicationFactory<Program>
{
    private readonly (int First, int Last) _ports = Ports.InstanceRange();

    public TestDirectory DataDirectory { get; } = new();

    /// <summary>Every log line the host wrote, at every level.</summary>
    public CapturedLogs Logs { get; } = new();

    public Dictionary<string, string> Settings { get; } = new()
    {
        ["Reconcile:Interval"] = "00:00:01",
    };

    /// <summary>Services registered after the control plane's own (the last registration of a service wins).</summary>
    public Action<IServiceCollection>? ConfigureServices { get; set; }

    public ControlPlaneApi CreateAdminApi() =>
        ControlPlaneApi.WithKey(CreateClient(), File.ReadAllText(Path.Combine(DataDirectory.Path, "admin-api-key")).Trim());

    public ControlPlaneApi CreateAnonymousApi() => new(CreateClient());

    /// <summary>A client holding a new key of <paramref name="tenantId"/> at <paramref name="role"/>, made through the API as a customer would.</summary>
    public async Task<ControlPlaneApi> CreateTenantApiAsync(string tenantId, string role)
    {
        using var response = await CreateAdminApi().SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/api-keys", new { name = $"{role} key", role });
        var created = await ControlPlaneApi.ExpectAsync(response, System.Net.HttpStatusCode.Created);
        return ControlPlaneApi.WithKey(CreateClient(), (string)created["secret"]!);
    }

    /// <summary>A client holding a new platform key at <paramref name="role"/> (sre, finance, platform-admin).</summary>
    public async Task<ControlPlaneApi> CreatePlatformApiAsync(string role)
    {
        using var response = await CreateAdminApi().SendAsync(HttpMethod.Post, "/api/v1/platform/api-keys", new { name = $"{role} key", role });
        var created = await ControlPlaneApi.ExpectAsync(response, System.Net.HttpStatusCode.Created);
        return ControlPlaneApi.WithKey(CreateClient(), (string)created["secret"]!);
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("ControlPlane:DataDir", DataDirectory.Path);
        builder.UseSetting("Provisioner:Local:FirstPort", _ports.First.ToString(System.Globalization.CultureInfo.InvariantCulture));
        builder.UseSetting("Provisioner:Local:LastPort", _ports.Last.ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (var (key, value) in Settings)
        {
            builder.UseSetting(key, value);
        }

        builder.ConfigureLogging(logging => logging.SetMinimumLevel(LogLevel.Trace).AddProvider(Logs));
        if (ConfigureServices is { } configure)
        {
            builder.ConfigureTestServices(configure);
        }
    }

    public string InstanceDirectory(string instanceId) => Path.Combine(DataDirectory.Path, "instances", instanceId);

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
        {
            DataDirectory.Dispose();
        }
    }
}
