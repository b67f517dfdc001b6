using System.Globalization;

namespace ControlPlane.Tests.Support;

/// <summary>
/// The real control plane as a separate OS process (<c>dotnet ControlPlane.dll</c>), as an operator runs
/// it: stop it gracefully, kill it with SIGKILL, start it again over the same data directory.
/// </summary>
public sealed class ControlPlaneProcess : AppProcess
{
    private readonly string _dataDirectory;
    private readonly (int First, int Last) _instancePorts;

    /// <param name="settings">More configuration (e.g. cluster mode's), passed as <c>--Key=value</c>.</param>
    public ControlPlaneProcess(string dataDirectory, (int First, int Last) instancePorts, IReadOnlyDictionary<string, string>? settings = null)
        : base("ControlPlane", "/readyz")
    {
        _dataDirectory = dataDirectory;
        _instancePorts = instancePorts;
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            Settings[key] = value;
        }
    }

    public static string BuildOutput => BuildOutputOf("ControlPlane");

    public ControlPlaneApi CreateAdminApi() => CreateApi(File.ReadAllText(Path.Combine(_dataDirectory, "admin-api-key")).Trim());

    public ControlPlaneApi CreateApi(string apiKey, TimeSpan? timeout = null) =>
        ControlPlaneApi.WithKey(new HttpClient { BaseAddress = BaseAddress, Timeout = timeout ?? TimeSpan.FromSeconds(100) }, apiKey);

    protected override IEnumerable<string> Arguments() =>
    [
        "--data-dir", _dataDirectory,
        "--Reconcile:Interval=00:00:02",
        $"--Provisioner:Local:FirstPort={_instancePorts.First.ToString(CultureInfo.InvariantCulture)}",
        $"--Provisioner:Local:LastPort={_instancePorts.Last.ToString(CultureInfo.InvariantCulture)}",
    ];
}
