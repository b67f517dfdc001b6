using System.Runtime.Versioning;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Provisioner.Deployments;

namespace Provisioner.Local;

/// <summary>
/// Stops every local instance when the host stops, only if <see cref="LocalBackendOptions.StopInstancesOnShutdown"/>
/// asks for it (a developer's laptop, a test run). By default instances keep serving their customers while
/// the control plane is down, and the next control plane adopts them.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class LocalInstancesShutdown(IEnumerable<IDeploymentBackend> backends, IOptions<LocalBackendOptions> options) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) =>
        options.Value.StopInstancesOnShutdown && backends.OfType<LocalBackend>().SingleOrDefault() is { } backend
            ? backend.StopAllAsync(cancellationToken)
            : Task.CompletedTask;
}
