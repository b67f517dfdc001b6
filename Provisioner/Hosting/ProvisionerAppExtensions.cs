using Provisioner.Commands;
using Provisioner.Local;
using Provisioner.Messaging;
using Provisioner.Messaging.Dapr;

namespace Provisioner.Hosting;

public static class ProvisionerAppExtensions
{
    public const int MaxRequestBodyBytes = 64 * 1024;

    /// <summary>
    /// The provisioner as a Dapr app: the engine (catalog, Local backend, worker), the Dapr transport, and
    /// events published back through the sidecar. Instances live under <c>&lt;data dir&gt;/instances</c>.
    /// </summary>
    public static WebApplicationBuilder AddProvisionerApp(this WebApplicationBuilder builder, string[] args)
    {
        builder.Configuration.AddCommandLine(args, new Dictionary<string, string> { ["--data-dir"] = "Provisioner:DataDir" });
        var dataDirectory = Path.GetFullPath(builder.Configuration["Provisioner:DataDir"] ?? "data", builder.Environment.ContentRootPath);

        // As on the control plane: a command is a few kilobytes, so a larger body is refused before it is read.
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = MaxRequestBodyBytes);
        var services = builder.Services;
        services.AddProvisioningEngine(builder.Configuration);
        services.PostConfigure<LocalBackendOptions>(local =>
        {
            if (string.IsNullOrEmpty(local.InstancesDirectory))
            {
                local.InstancesDirectory = Path.Combine(dataDirectory, "instances");
            }
        });
        services.AddDaprTransport(builder.Configuration);
        services.AddSingleton<IProvisioningEventSink, DaprProvisioningEventSink>();
        services.AddHealthChecks();
        return builder;
    }
}
