using System.Diagnostics;
using System.Security.Cryptography;
using FakeDapr;

namespace ControlPlane.Bench;

/// <summary>
/// Cluster mode's provisioning path on this machine: the control plane with <c>Provisioning:Transport=Dapr</c> and
/// the Provisioner app, two processes connected only through fake Dapr sidecars (real DaprClient, gRPC, CloudEvents
/// over HTTP), so the figures include everything the bus adds except the broker's own network hop.
/// </summary>
internal sealed class DaprPath : IAsyncDisposable
{
    private static readonly TimeSpan s_stopTimeout = TimeSpan.FromSeconds(30);

    private readonly FakePubSub _broker = new("pubsub");
    private FakeDaprSidecar? _controlPlaneSidecar;
    private FakeDaprSidecar? _provisionerSidecar;
    private Process? _provisioner;

    public ControlPlaneHost Host { get; private set; } = null!;

    public string ProvisionerLogFile { get; private set; } = "";

    public static async Task<DaprPath> StartAsync(string controlPlaneDll, string workDirectory, CancellationToken cancellationToken)
    {
        var path = new DaprPath();
        try
        {
            await path.StartInnerAsync(controlPlaneDll, workDirectory, cancellationToken);
            return path;
        }
        catch
        {
            await path.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Host is not null)
        {
            await Host.DisposeAsync();
        }

        if (_provisioner is not null)
        {
            await DetachedProcesses.TerminateAsync(_provisioner, s_stopTimeout);
            _provisioner.Dispose();
        }

        if (_controlPlaneSidecar is not null)
        {
            await _controlPlaneSidecar.DisposeAsync();
        }

        if (_provisionerSidecar is not null)
        {
            await _provisionerSidecar.DisposeAsync();
        }
    }

    private async Task StartInnerAsync(string controlPlaneDll, string workDirectory, CancellationToken cancellationToken)
    {
        var provisionerDll = ControlPlaneHost.LocateBuild("ProvisionerPath", "Provisioner app");
        var controlPlanePort = LoopbackPorts.Ephemeral();
        var controlPlaneAppPort = LoopbackPorts.Ephemeral();
        var provisionerPort = LoopbackPorts.Ephemeral();
        // The app tokens daprd would send, which both apps require.
        var controlPlaneToken = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
        var provisionerToken = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
        _controlPlaneSidecar = await FakeDaprSidecar.StartAsync(_broker, "controlplane", new Uri($"http://127.0.0.1:{controlPlaneAppPort}"), appApiToken: controlPlaneToken);
        _provisionerSidecar = await FakeDaprSidecar.StartAsync(_broker, "provisioner", new Uri($"http://127.0.0.1:{provisionerPort}"), appApiToken: provisionerToken);
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var provisionerData = Path.Combine(workDirectory, "provisioner");
        ProvisionerLogFile = Path.Combine(workDirectory, "provisioner.log");
        _provisioner = DetachedProcesses.Start(
            GarnetLaunchTemplate.DotnetHost(),
            [
                provisionerDll, "--data-dir", provisionerData, "--urls", $"http://127.0.0.1:{provisionerPort}",
                $"--Provisioning:Dapr:GrpcEndpoint={_provisionerSidecar.GrpcEndpoint}",
                $"--Provisioning:Dapr:SecretKey={key}",
                $"--Provisioning:Dapr:AppApiToken={provisionerToken}",
                // Apart from the embedded control plane's instances (21000-21999) and the bare Garnets (23000-23999).
                "--Provisioner:Local:FirstPort=24000",
                "--Provisioner:Local:LastPort=24999",
            ],
            environment: null,
            Path.GetDirectoryName(provisionerDll)!,
            ProvisionerLogFile);
        Host = await ControlPlaneHost.StartAsync(
            controlPlaneDll,
            workDirectory,
            cancellationToken,
            name: "controlplane-dapr",
            settings: new Dictionary<string, string>
            {
                ["Provisioning:Transport"] = "Dapr",
                ["Provisioning:Dapr:GrpcEndpoint"] = _controlPlaneSidecar.GrpcEndpoint,
                ["Provisioning:Dapr:SecretKey"] = key,
                ["Provisioning:Dapr:AppApiToken"] = controlPlaneToken,
                ["Provisioning:Dapr:AppPort"] = controlPlaneAppPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            },
            port: controlPlanePort,
            instancesDirectory: Path.Combine(provisionerData, "instances"),
            helperProcessIds: [_provisioner.Id]);
        await _provisionerSidecar.WhenSubscribedAsync(TimeSpan.FromSeconds(60)).WaitAsync(cancellationToken);
        await _controlPlaneSidecar.WhenSubscribedAsync(TimeSpan.FromSeconds(60)).WaitAsync(cancellationToken);
    }
}
