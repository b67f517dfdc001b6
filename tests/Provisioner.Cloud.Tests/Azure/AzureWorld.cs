using Azure.Core;
using FakeArm;
using Microsoft.Extensions.DependencyInjection;
using Provisioner.Azure;
using Provisioner.Cloud.Tests.Support;
using Provisioner.Deployments;
using Xunit.Abstractions;

namespace Provisioner.Cloud.Tests.Azure;

/// <summary>A fake ARM whose Container Apps run as real Garnet processes, and a provisioner signed in to it with a test credential.</summary>
public sealed class AzureWorld : IAsyncDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly List<EngineHost> _hosts = [];

    private AzureWorld(ITestOutputHelper output, FakeArmServer arm, string root)
    {
        _output = output;
        Arm = arm;
        Root = root;
        Settings = new Dictionary<string, string?>
        {
            ["Provisioner:Local:InstancesDirectory"] = Path.Combine(root, "local"),
            ["Provisioner:Azure:Enabled"] = "true",
            ["Provisioner:Azure:SubscriptionId"] = FakeArmServer.SubscriptionId,
            ["Provisioner:Azure:Location"] = "westeurope",
            ["Provisioner:Azure:ManagedEnvironmentId"] = FakeArmServer.EnvironmentId,
            ["Provisioner:Azure:StorageName"] = FakeArmServer.StorageName,
            ["Provisioner:Azure:ResourceManagerEndpoint"] = arm.BaseUrl,
            ["Provisioner:Azure:TrustedRootCertificateFile"] = arm.CertificateFile,
            ["Provisioner:Azure:PollInterval"] = "00:00:00.100",
            ["Provisioner:Azure:Http:BaseDelay"] = "00:00:00.050",
            ["Provisioner:Azure:Http:MaxRetries"] = "2",
            ["Catalog:Products:garnet:Container:StartupTimeoutSeconds"] = "60",
        };
    }

    public FakeArmServer Arm { get; }

    public string Root { get; }

    public Dictionary<string, string?> Settings { get; }

    public string TenantId { get; } = Specs.NewId("tnt");

    public string Password { get; } = "pw-" + Guid.NewGuid().ToString("N");

    public string Group => "tenant-" + TenantId;

    public static async Task<AzureWorld> StartAsync(ITestOutputHelper output)
    {
        var root = Directory.CreateTempSubdirectory("arm-tests-").FullName;
        var arm = await FakeArmServer.StartAsync(root);
        arm.Runner.Images["ghcr.io/microsoft/garnet"] = (EngineHost.DotnetHost, [EngineHost.GarnetHostDll]);
        return new AzureWorld(output, arm, root);
    }

    public async Task<EngineHost> StartProvisionerAsync()
    {
        var host = await EngineHost.StartAsync(Settings, _output, services => services.AddSingleton<TokenCredential>(new FakeArmCredential(Arm)));
        _hosts.Add(host);
        return host;
    }

    public DeploymentSpec Spec(string instanceId, string size = "small", long generation = 1) =>
        Specs.Garnet(AzureBackend.BackendName, TenantId, instanceId, Password, size, generation);

    public async ValueTask DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            host.AssertNeverLogged(Password);
            await host.DisposeAsync();
        }

        foreach (var line in Arm.Runner.Output.TakeLast(10))
        {
            _output.WriteLine($"app: {line}");
        }

        await Arm.DisposeAsync();
        Directory.Delete(Root, recursive: true);
    }

    /// <summary>A test credential: tokens the fake issued, as the environment's managed identity endpoint would.</summary>
    private sealed class FakeArmCredential(FakeArmServer arm) : TokenCredential
    {
        public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            new(arm.IssueToken(), DateTimeOffset.UtcNow.AddHours(1));

        public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            ValueTask.FromResult(GetToken(requestContext, cancellationToken));
    }
}
