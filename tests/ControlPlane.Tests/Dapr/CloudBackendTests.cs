using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using ControlPlane.Tests.Support;
using FakeArm;
using FakeKubernetes;
using Provisioner.Health;
using Xunit.Abstractions;

namespace ControlPlane.Tests.Dapr;

/// <summary>
/// Cluster mode's whole path with each cloud backend selected: the REST API, the control plane, Dapr pub/sub (fake sidecars),
/// the Provisioner app as its own process, and its Kubernetes or Azure backend talking to a fake API server or a fake ARM
/// whose instances are real Garnet processes.
/// </summary>
[Collection(DaprProcessesCollection.Name)]
public sealed class CloudBackendTests(ITestOutputHelper output)
{
    private static string DotnetHost => Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..", "dotnet"));

    private static string GarnetHostDll => Path.Combine(AppProcess.BuildOutputOf("Provisioner"), "products", "garnet", "GarnetHost.dll");

    [Fact]
    public async Task With_the_kubernetes_backend_an_instance_is_created_running_at_its_service_name_and_deleted_through_the_api()
    {
        using var root = new TestDirectory();
        await using var cluster = await FakeKubernetesServer.StartAsync(root.Path);
        cluster.Kubelet.Images["ghcr.io/microsoft/garnet"] = new LocalImage(DotnetHost, [GarnetHostDll]);
        await using var apps = await DaprApps.StartAsync(apps =>
        {
            apps.ControlPlane.Settings["Instances:DefaultBackend"] = "kubernetes";
            // What this backend advertises: service names in the cluster domain, and the fake kubelet's loopback pod addresses.
            apps.ControlPlane.Settings["Provisioning:Dapr:EndpointHosts:0"] = "*.svc.cluster.local";
            apps.ControlPlane.Settings["Provisioning:Dapr:EndpointHosts:1"] = "127.0.0.0/8";
            apps.Provisioner.Settings["Provisioner:Kubernetes:Enabled"] = "true";
            apps.Provisioner.Settings["Provisioner:Kubernetes:ApiServer"] = cluster.BaseUrl;
            apps.Provisioner.Settings["Provisioner:Kubernetes:PlatformNamespace"] = "controlplane";
            apps.Provisioner.Settings["Provisioner:Kubernetes:PollInterval"] = "00:00:00.200";
        });
        var api = apps.ControlPlane.CreateAdminApi();
        var tenantId = (string)(await api.CreateTenantAsync("Kube Ltd", "team"))["id"]!;

        var created = Stopwatch.StartNew();
        var instance = await api.CreateRunningInstanceAsync(tenantId, "on-kubernetes");
        output.WriteLine($"Create to Running through the API with the Kubernetes backend: {created.ElapsedMilliseconds} ms");

        var instanceId = (string)instance["id"]!;
        var ns = "tenant-" + tenantId;
        Assert.Equal("kubernetes", (string?)instance["backend"]);
        Assert.Equal($"{instanceId}.{ns}.svc.cluster.local", (string?)instance["endpoint"]!["host"]);
        Assert.Equal(6379, (int?)instance["endpoint"]!["port"]);
        var credentials = await api.GetCredentialsAsync(tenantId, instanceId);
        var pod = cluster.Get("Pod", ns, instanceId + "-0")!;
        var ping = await RespPingProbe.PingAsync((string)pod["status"]!["podIP"]!, 6379, (string)credentials["password"]!, TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.True(ping.Answered, ping.Detail);
        Assert.NotNull(cluster.Get("StatefulSet", ns, instanceId));

        await DeleteAsync(api, tenantId, instanceId);
        Assert.Null(cluster.Get("StatefulSet", ns, instanceId));
        Assert.Null(cluster.Get("PersistentVolumeClaim", ns, instanceId + "-data"));
        Assert.Empty(cluster.Kubelet.ProcessIds);
        Assert.DoesNotContain(apps.Provisioner.Output, line => line.Contains((string)credentials["password"]!, StringComparison.Ordinal));
    }

    [Fact]
    public async Task With_the_azure_backend_an_instance_is_created_served_at_its_container_app_address_and_deleted_through_the_api()
    {
        using var root = new TestDirectory();
        await using var arm = await FakeArmServer.StartAsync(root.Path);
        arm.Runner.Images["ghcr.io/microsoft/garnet"] = (DotnetHost, [GarnetHostDll]);
        await using var apps = await DaprApps.StartAsync(apps =>
        {
            apps.ControlPlane.Settings["Instances:DefaultBackend"] = "azure";
            // The fake ARM serves each container app on a loopback address, where Azure would give an FQDN in the environment's domain.
            apps.ControlPlane.Settings["Provisioning:Dapr:EndpointHosts:0"] = "127.0.0.0/8";
            var provisioner = apps.Provisioner.Settings;
            provisioner["Provisioner:Azure:Enabled"] = "true";
            provisioner["Provisioner:Azure:SubscriptionId"] = FakeArmServer.SubscriptionId;
            provisioner["Provisioner:Azure:Location"] = "westeurope";
            provisioner["Provisioner:Azure:ManagedEnvironmentId"] = FakeArmServer.EnvironmentId;
            provisioner["Provisioner:Azure:ResourceManagerEndpoint"] = arm.BaseUrl;
            provisioner["Provisioner:Azure:TrustedRootCertificateFile"] = arm.CertificateFile;
            provisioner["Provisioner:Azure:ManagedIdentityClientId"] = "11111111-2222-3333-4444-555555555555";
            provisioner["Provisioner:Azure:PollInterval"] = "00:00:00.200";
            // How Container Apps hands its apps a managed identity: the provisioner signs in exactly as it would there.
            apps.Provisioner.Environment["IDENTITY_ENDPOINT"] = arm.IdentityEndpoint;
            apps.Provisioner.Environment["IDENTITY_HEADER"] = arm.IdentityHeader;
        });
        var api = apps.ControlPlane.CreateAdminApi();
        var tenantId = (string)(await api.CreateTenantAsync("Azure Ltd", "team"))["id"]!;

        var created = Stopwatch.StartNew();
        // The Azure world's Garnet gets 60 s to answer its first PING (as in Provisioner.Cloud.Tests); the create waits longer than that.
        var instance = await api.CreateRunningInstanceAsync(tenantId, "on-azure", timeout: TimeSpan.FromSeconds(120));
        output.WriteLine($"Create to Running through the API with the Azure backend: {created.ElapsedMilliseconds} ms");

        var instanceId = (string)instance["id"]!;
        Assert.Equal("azure", (string?)instance["backend"]);
        var credentials = await api.GetCredentialsAsync(tenantId, instanceId);
        Assert.StartsWith("127.78.", (string)credentials["host"]!, StringComparison.Ordinal);
        await using (var connection = await GarnetClient.ConnectAsync(credentials))
        {
            await connection.GetDatabase().StringSetAsync("cloud", "azure");
            Assert.Equal("azure", (string?)await connection.GetDatabase().StringGetAsync("cloud"));
        }

        Assert.Contains($"tenant-{tenantId}", arm.ResourceGroups());
        Assert.Contains(arm.Requests, request => request.StartsWith("GET /msi/token", StringComparison.Ordinal));

        await DeleteAsync(api, tenantId, instanceId);
        Assert.Empty(arm.Apps());
        Assert.Empty(arm.Runner.ProcessIds);
        Assert.DoesNotContain(apps.Provisioner.Output, line => line.Contains((string)credentials["password"]!, StringComparison.Ordinal));
    }

    private static async Task DeleteAsync(ControlPlaneApi api, string tenantId, string instanceId)
    {
        using var delete = await api.SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{tenantId}/instances/{instanceId}");
        var operation = await ControlPlaneApi.ExpectAsync(delete, HttpStatusCode.Accepted);
        var finished = await api.WaitForOperationAsync(tenantId, (string)operation["id"]!);
        Assert.True((string?)finished["status"] == "succeeded", finished.ToJsonString());
    }
}
