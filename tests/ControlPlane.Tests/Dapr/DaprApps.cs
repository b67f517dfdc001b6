using System.Security.Cryptography;
using ControlPlane.Tests.Support;
using FakeDapr;
using Provisioner.Messaging.Wire;

namespace ControlPlane.Tests.Dapr;

/// <summary>
/// Cluster mode's provisioning on one machine: the control plane and the Provisioner app as two OS processes,
/// each with its own fake sidecar, connected only through the fake pub/sub broker. The key that encrypts
/// instance passwords on the bus reaches both apps through their sidecars' secret store, as in a cluster.
/// </summary>
public sealed class DaprApps : IAsyncDisposable
{
    public const string CommandsTopic = "provisioning-commands";
    public const string EventsTopic = "provisioning-events";
    public const string DeadLetterTopic = "provisioning-dead-letters";

    private readonly TestDirectory _directory = new();
    private FakeDaprSidecar? _controlPlaneSidecar;
    private FakeDaprSidecar? _provisionerSidecar;

    private DaprApps()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var secrets = new Dictionary<string, IReadOnlyDictionary<string, string>>
        {
            ["secrets"] = new Dictionary<string, string> { ["provisioning-secret-key"] = Convert.ToBase64String(key) },
        };
        Secrets = secrets;
        var protector = new WireSecretProtector();
        protector.UseKey(key);
        Wire = new ProvisioningWireFormat(protector);
        ControlPlane = new ControlPlaneProcess(Path.Combine(_directory.Path, "controlplane"), Ports.InstanceRange());
        Provisioner = new ProvisionerProcess(Path.Combine(_directory.Path, "provisioner"), Ports.InstanceRange());
    }

    /// <summary>Shared by both sidecars: its knobs make messages arrive twice, late or damaged.</summary>
    public FakePubSub Broker { get; } = new("pubsub") { MaxAttempts = 60, RetryInterval = TimeSpan.FromMilliseconds(250) };

    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> Secrets { get; }

    /// <summary>The wire format with the key both apps hold, for tests that send what only a key holder could.</summary>
    public ProvisioningWireFormat Wire { get; }

    /// <summary>Publishes <paramref name="data"/> on the events topic through the provisioner's sidecar, as anything on its side could.</summary>
    public async Task<string> PublishEventAsync(System.Text.Json.JsonElement data)
    {
        using var client = new global::Dapr.Client.DaprClientBuilder().UseGrpcEndpoint(ProvisionerSidecar.GrpcEndpoint).UseDaprApiToken(ProvisionerSidecar.ApiToken).Build();
        await client.PublishEventAsync("pubsub", EventsTopic, data);
        return Broker.Published.Last(message => message.Topic == EventsTopic && message.Data?.ToJsonString() == System.Text.Json.Nodes.JsonNode.Parse(data.GetRawText())!.ToJsonString()).Id;
    }

    public ControlPlaneProcess ControlPlane { get; }

    /// <summary>The port of the control plane's Dapr app channel (<c>Provisioning:Dapr:AppPort</c>).</summary>
    public int ControlPlaneAppPort { get; } = Ports.Free();

    public ProvisionerProcess Provisioner { get; }

    public FakeDaprSidecar ControlPlaneSidecar => _controlPlaneSidecar!;

    public FakeDaprSidecar ProvisionerSidecar => _provisionerSidecar!;

    public string InstanceDirectory(string instanceId) => Path.Combine(_directory.Path, "provisioner", "instances", instanceId);

    /// <summary>Sidecars first (as daprd starts beside its app), then both apps; returns once each sidecar found the app's subscriptions.</summary>
    public static async Task<DaprApps> StartAsync(Action<DaprApps>? configure = null)
    {
        var apps = new DaprApps();
        try
        {
            configure?.Invoke(apps);
            // Both tokens daprd uses, as a cluster would set them: the app's calls to its sidecar, and the sidecar's to its app.
            // The control plane's sidecar calls it on its own loopback listener, apart from the public API.
            apps.ControlPlane.Settings["Provisioning:Dapr:AppPort"] = apps.ControlPlaneAppPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
            apps._controlPlaneSidecar = await FakeDaprSidecar.StartAsync(
                apps.Broker, "controlplane", new Uri($"http://127.0.0.1:{apps.ControlPlaneAppPort}"), secretStores: apps.Secrets, apiToken: NewToken(), appApiToken: NewToken());
            apps._provisionerSidecar = await FakeDaprSidecar.StartAsync(
                apps.Broker, "provisioner", apps.Provisioner.BaseAddress, secretStores: apps.Secrets, apiToken: NewToken(), appApiToken: NewToken());
            UseSidecar(apps.ControlPlane, apps.ControlPlaneSidecar);
            apps.ControlPlane.Settings["Provisioning:Transport"] = "Dapr";
            UseSidecar(apps.Provisioner, apps.ProvisionerSidecar);
            await Task.WhenAll(apps.Provisioner.StartAsync(), apps.ControlPlane.StartAsync());
            await apps.ControlPlaneSidecar.WhenSubscribedAsync(TimeSpan.FromSeconds(30));
            await apps.ProvisionerSidecar.WhenSubscribedAsync(TimeSpan.FromSeconds(30));
            return apps;
        }
        catch
        {
            await apps.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await ControlPlane.DisposeAsync();
        await Provisioner.DisposeAsync();
        if (_controlPlaneSidecar is not null)
        {
            await _controlPlaneSidecar.DisposeAsync();
        }

        if (_provisionerSidecar is not null)
        {
            await _provisionerSidecar.DisposeAsync();
        }

        _directory.Dispose();
    }

    private static void UseSidecar(AppProcess app, FakeDaprSidecar sidecar)
    {
        app.Settings["Provisioning:Dapr:GrpcEndpoint"] = sidecar.GrpcEndpoint;
        app.Settings["Provisioning:Dapr:SecretStore"] = "secrets";
        app.Environment["DAPR_API_TOKEN"] = sidecar.ApiToken!;
        app.Environment["APP_API_TOKEN"] = sidecar.AppApiToken!;
    }

    private static string NewToken() => Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
}
