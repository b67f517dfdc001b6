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
