using System.Globalization;

namespace ControlPlane.Tests.Support;

/// <summary>The Provisioner Dapr app as a separate OS process over its own data directory and instance ports.</summary>
public sealed class ProvisionerProcess(string dataDirectory, (int First, int Last) instancePorts) : AppProcess("Provisioner", "/healthz")
{
    protected override IEnumerable<string> Arguments() =>
    [
        "--data-dir", dataDirectory,
        $"--Provisioner:Local:FirstPort={instancePorts.First.ToString(CultureInfo.InvariantCulture)}",
        $"--Provisioner:Local:LastPort={instancePorts.Last.ToString(CultureInfo.InvariantCulture)}",
    ];
}
