using System.Net.Http.Headers;
using ControlPlane.Security;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Billing.Stripe.Tests.Support;

/// <summary>The real control-plane host over a private data directory, with clients holding keys of any role.</summary>
public abstract class ControlPlaneApiHost(string name) : WebApplicationFactory<Program>, IAsyncLifetime
{
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory(name + "-").FullName;

    public async Task<HttpClient> ClientAsync(string role, string? tenantId = null)
    {
        var (_, secret) = await Services.GetRequiredService<ApiKeyStore>().CreateAsync("test " + role, role, tenantId);
        var client = CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", secret);
        return client;
    }

    public virtual Task InitializeAsync()
    {
        _ = Server;
        return Task.CompletedTask;
    }

    Task IAsyncLifetime.DisposeAsync() => StopAsync();

    /// <summary>Stops the host and deletes its data directory (xunit's end of the fixture).</summary>
    protected virtual Task StopAsync()
    {
        Dispose();
        Provisioner.Local.LocalIsolation.ReleaseAll(Path.Combine(_dataDirectory, "instances"));
        Directory.Delete(_dataDirectory, recursive: true);
        return Task.CompletedTask;
    }

    /// <summary>Settings beyond the data directory.</summary>
    protected virtual void Configure(IWebHostBuilder builder)
    {
    }

    protected sealed override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("ControlPlane:DataDir", _dataDirectory);
        builder.ConfigureLogging(logging => logging.ClearProviders());
        Configure(builder);
    }
}
