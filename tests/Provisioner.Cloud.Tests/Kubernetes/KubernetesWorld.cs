using System.Text.Json.Nodes;
using FakeKubernetes;
using Provisioner.Cloud.Tests.Support;
using Provisioner.Deployments;
using Provisioner.Kubernetes;
using Xunit.Abstractions;

namespace Provisioner.Cloud.Tests.Kubernetes;

/// <summary>A fake cluster whose kubelet runs the Garnet image as real Garnet processes, and a provisioner pointed at it.</summary>
public sealed class KubernetesWorld : IAsyncDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly List<EngineHost> _hosts = [];

    private KubernetesWorld(ITestOutputHelper output, FakeKubernetesServer cluster, string root)
    {
        _output = output;
        Cluster = cluster;
        Root = root;
        Settings = new Dictionary<string, string?>
        {
            ["Provisioner:Local:InstancesDirectory"] = Path.Combine(root, "local"),
            ["Provisioner:Kubernetes:Enabled"] = "true",
            ["Provisioner:Kubernetes:ApiServer"] = cluster.BaseUrl,
            ["Provisioner:Kubernetes:PlatformNamespace"] = "controlplane",
            ["Provisioner:Kubernetes:IngressNamespaces:0"] = "ingress-nginx",
            ["Provisioner:Kubernetes:PollInterval"] = "00:00:00.100",
            ["Provisioner:Kubernetes:DeleteTimeout"] = "00:00:30",
            ["Provisioner:Kubernetes:Http:BaseDelay"] = "00:00:00.050",
            ["Provisioner:Kubernetes:Http:MaxRetries"] = "2",
            // As the Azure world's: a restart of a Garnet with data on a loaded 2-core CI machine took longer than 20 s once.
            ["Catalog:Products:garnet:Container:StartupTimeoutSeconds"] = "60",
        };
    }

    public FakeKubernetesServer Cluster { get; }

    public string Root { get; }

    public Dictionary<string, string?> Settings { get; }

    public string TenantId { get; } = Specs.NewId("tnt");

    public string Password { get; } = "pw-" + Guid.NewGuid().ToString("N");

    public string Namespace => "tenant-" + TenantId;

    public static async Task<KubernetesWorld> StartAsync(ITestOutputHelper output)
    {
        var root = Directory.CreateTempSubdirectory("k8s-tests-").FullName;
        var cluster = await FakeKubernetesServer.StartAsync(root);
        cluster.Kubelet.Images["ghcr.io/microsoft/garnet"] = new LocalImage(EngineHost.DotnetHost, [EngineHost.GarnetHostDll]);
        return new KubernetesWorld(output, cluster, root);
    }

    /// <summary>A provisioner over this cluster; another call is a provisioner that restarted (its memory is gone, the cluster is not).</summary>
    public async Task<EngineHost> StartProvisionerAsync()
    {
        var host = await EngineHost.StartAsync(Settings, _output);
        _hosts.Add(host);
        return host;
    }

    public DeploymentSpec Spec(string instanceId, string size = "small", long generation = 1) =>
        Specs.Garnet(KubernetesBackend.BackendName, TenantId, instanceId, Password, size, generation);

    public JsonObject? Get(string kind, string name, string? ns = null) => Cluster.Get(kind, kind == "Namespace" ? null : ns ?? Namespace, name);

    public IReadOnlyList<JsonObject> All(string kind) => Cluster.List(kind, kind == "Namespace" ? null : Namespace);

    public async ValueTask DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            host.AssertNeverLogged(Password);
            await host.DisposeAsync();
        }

        var podLogs = Cluster.Kubelet.Logs.Values.SelectMany(lines => lines).ToList();
        foreach (var line in Cluster.Controllers.Events.Distinct().Take(20).Concat(podLogs.TakeLast(20)))
        {
            _output.WriteLine($"cluster: {line}");
        }

        await Cluster.DisposeAsync();
        Directory.Delete(Root, recursive: true);
        Assert.DoesNotContain(podLogs, line => line.Contains(Password, StringComparison.Ordinal));
    }
}
