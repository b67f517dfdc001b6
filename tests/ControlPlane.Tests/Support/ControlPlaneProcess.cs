using System.Globalization;

namespace ControlPlane.Tests.Support;

/// <summary>
/// The real control plane as a separate OS process (<c>dotnet ControlPlane.dll</c>), as an operator runs
/// it: stop it gracefully, kill it with SIGKILL, start it again over the same data directory.
/// </summary>
public sealed class ControlPlaneProcess(string dataDirectory, (int First, int Last) instancePorts) : AppProcess("ControlPlane", "/readyz")
{
    public static string BuildOutput => BuildOutputOf("ControlPlane");

    public ControlPlaneApi CreateAdminApi() =>
        ControlPlaneApi.WithKey(new HttpClient { BaseAddress = BaseAddress }, File.ReadAllText(Path.Combine(dataDirectory, "admin-api-key")).Trim());

    protected override IEnumerable<string> Arguments() =>
    [
        "--data-dir", dataDirectory,
        "--Reconcile:Interval=00:00:02",
        $"--Provisioner:Local:FirstPort={instancePorts.First.ToString(CultureInfo.InvariantCulture)}",
        $"--Provisioner:Local:LastPort={instancePorts.Last.ToString(CultureInfo.InvariantCulture)}",
    ];
}
