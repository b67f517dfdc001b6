using System.Text;
using System.Text.Json.Nodes;
using Provisioner.Cloud.Tests.Support;
using Provisioner.Deployments;
using Provisioner.Health;
using Provisioner.Kubernetes;
using Provisioner.Messaging;
using Xunit.Abstractions;

namespace Provisioner.Cloud.Tests.Kubernetes;

public sealed class KubernetesBackendTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Create_applies_exactly_the_tenant_and_instance_objects_and_runs_when_the_pod_answers_an_authenticated_ping()
    {
        await using var world = await KubernetesWorld.StartAsync(output);
        var provisioner = await world.StartProvisionerAsync();
        var instanceId = Specs.NewId("ins");

        var applied = await provisioner.ApplySucceedsAsync(world.Spec(instanceId));

        var observed = await RunningAsync(provisioner.Backend<KubernetesBackend>(), world.Spec(instanceId), applied.Observed);
        Assert.Equal(DeploymentStatus.Running, observed.Status);
        Assert.Equal(DeploymentHealth.Healthy, observed.Health);
        Assert.Equal(new Endpoint { Host = $"{instanceId}.{world.Namespace}.svc.cluster.local", Port = 6379 }, observed.Endpoint);
        Assert.StartsWith("127.77.", observed.ProbeEndpoint!.Host, StringComparison.Ordinal);
        Assert.Equal(6379, observed.ProbeEndpoint.Port);
        Assert.Equal(1, observed.ProcessStarts);
        Assert.Equal(0, observed.Restarts);
        Assert.True((await RespPingProbe.PingAsync(observed.ProbeEndpoint.Host, 6379, world.Password, TimeSpan.FromSeconds(5), CancellationToken.None)).Answered);
        Assert.False((await RespPingProbe.PingAsync(observed.ProbeEndpoint.Host, 6379, "wrong", TimeSpan.FromSeconds(5), CancellationToken.None)).Answered);
        Assert.True((await RespPingProbe.PingAsync(observed.ProbeEndpoint.Host, 6379, InstanceAccess.PlatformUser, Specs.PlatformPassword, TimeSpan.FromSeconds(5), CancellationToken.None)).Answered);
        Assert.StartsWith("-NOPERM", await RespPingProbe.RunAsync(
            observed.ProbeEndpoint.Host, 6379, InstanceAccess.CustomerUser, world.Password, ["ACL", "DELUSER", InstanceAccess.PlatformUser], TimeSpan.FromSeconds(5), CancellationToken.None), StringComparison.Ordinal);

        var ns = world.Get("Namespace", world.Namespace)!;
        Assert.Equal(world.TenantId, (string?)ns["metadata"]!["labels"]!["controlplane.io/tenant"]);
        var quota = world.Get("ResourceQuota", "instances")!["spec"]!["hard"]!;
        Assert.Equal("25", (string?)quota["pods"]);
        Assert.Equal("0", (string?)quota["services.nodeports"]);
        Assert.NotNull(world.Get("LimitRange", "defaults")!["spec"]!["limits"]![0]!["default"]);
        var deny = world.Get("NetworkPolicy", "default-deny")!["spec"]!;
        Assert.Equal(new JsonObject(), deny["podSelector"]);
        Assert.Equal(["Ingress", "Egress"], deny["policyTypes"]!.AsArray().Select(type => (string?)type));
        var open = world.Get("NetworkPolicy", instanceId)!["spec"]!;
        Assert.Equal(instanceId, (string?)open["podSelector"]!["matchLabels"]!["controlplane.io/instance"]);
        var rule = Assert.Single(open["ingress"]!.AsArray())!;
        Assert.Equal(6379, (int?)Assert.Single(rule["ports"]!.AsArray())!["port"]);
        Assert.Equal(["ingress-nginx", "controlplane"], rule["from"]!.AsArray().Select(peer => (string?)peer!["namespaceSelector"]!["matchLabels"]!["kubernetes.io/metadata.name"]));

        var secret = world.Get("Secret", instanceId + "-credentials")!;
        // The Secret carries the access control file: password hashes for the customer's and the platform's users, no password.
        var accessControl = Encoding.UTF8.GetString(Convert.FromBase64String((string)secret["data"]!["acl"]!));
        Assert.Equal(InstanceAccess.AccessControlFile(world.Spec(instanceId)), accessControl);
        Assert.DoesNotContain(world.Password, accessControl, StringComparison.Ordinal);
        Assert.Equal("2Gi", (string?)world.Get("PersistentVolumeClaim", instanceId + "-data")!["spec"]!["resources"]!["requests"]!["storage"]);
        var service = world.Get("Service", instanceId)!["spec"]!;
        Assert.Equal("ClusterIP", (string?)service["type"]);
        Assert.Equal(6379, (int?)service["ports"]![0]!["port"]);

        var set = world.Get("StatefulSet", instanceId)!;
        Assert.Equal(1, (int?)set["spec"]!["replicas"]);
        var pod = set["spec"]!["template"]!["spec"]!;
        var container = pod["containers"]![0]!;
        Assert.Equal("ghcr.io/microsoft/garnet:2.2.8", (string?)container["image"]);
        Assert.Equal("250m", (string?)container["resources"]!["limits"]!["cpu"]);
        Assert.Equal("384Mi", (string?)container["resources"]!["limits"]!["memory"]);
        Assert.Equal(instanceId + "-credentials", (string?)container["env"]![0]!["valueFrom"]!["secretKeyRef"]!["name"]);
        Assert.True((bool?)pod["securityContext"]!["runAsNonRoot"]);
        Assert.True((bool?)container["securityContext"]!["readOnlyRootFilesystem"]);
        Assert.Equal(instanceId + "-data", (string?)pod["volumes"]![0]!["persistentVolumeClaim"]!["claimName"]);
        Assert.DoesNotContain(world.Password, set.ToJsonString(), StringComparison.Ordinal);
        Assert.Equal(["controlplane-provisioner"], world.Cluster.Store.Managers(new FakeKubernetes.ObjectKey(FakeKubernetes.ResourceType.Of("StatefulSet"), world.Namespace, instanceId)).Keys);
        // Every write was a server-side apply: the backend never creates, replaces or merge-patches.
        Assert.DoesNotContain(world.Cluster.Requests, request => request.StartsWith("POST", StringComparison.Ordinal) || request.StartsWith("PUT", StringComparison.Ordinal));
        Assert.Contains(world.Cluster.Requests, request => request.StartsWith("PATCH", StringComparison.Ordinal) && request.Contains("fieldManager=controlplane-provisioner", StringComparison.Ordinal) && request.Contains("force=true", StringComparison.Ordinal));

        var again = await provisioner.Backend<KubernetesBackend>().PlanAsync(world.Spec(instanceId), CancellationToken.None);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!again.IsUpToDate && DateTime.UtcNow < deadline)
        {
            // A health probe that timed out on a loaded machine plans a wait step; a later reconcile's plan is clean.
            output.WriteLine($"Plan not up to date yet: {again.Drift}");
            await Task.Delay(250);
            again = await provisioner.Backend<KubernetesBackend>().PlanAsync(world.Spec(instanceId), CancellationToken.None);
        }

        Assert.True(again.IsUpToDate, $"{string.Join(", ", again.Steps.Select(step => step.Name))}: {again.Drift}");
    }

    /// <summary>
    /// The observation once the pod answers: the apply's wait step saw an authenticated PING, but the observation after it
    /// probes again and, on a loaded machine, that probe may time out (Starting); a reconcile would look again, so does this.
    /// </summary>
    private async Task<ObservedDeployment> RunningAsync(KubernetesBackend backend, DeploymentSpec spec, ObservedDeployment observed)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (observed.Status != DeploymentStatus.Running && DateTime.UtcNow < deadline)
        {
            output.WriteLine($"Observed {observed.Status} ({observed.Health}) after the apply; observing again.");
            await Task.Delay(250);
            observed = await backend.ObserveAsync(spec, CancellationToken.None);
        }

        return observed;
    }

    [Fact]
    public async Task Scale_restart_stop_and_start_patch_in_place_and_keep_the_data_then_delete_removes_everything()
    {
        await using var world = await KubernetesWorld.StartAsync(output);
        var provisioner = await world.StartProvisionerAsync();
        var instanceId = Specs.NewId("ins");
        var first = await provisioner.ApplySucceedsAsync(world.Spec(instanceId));
        await Customer.WriteAsync(first.Observed.ProbeEndpoint!, world.Password, "kept", "through everything");
        var claimUid = (string?)world.Get("PersistentVolumeClaim", instanceId + "-data")!["metadata"]!["uid"];

        var scaled = await provisioner.ApplySucceedsAsync(world.Spec(instanceId, size: "medium", generation: 2));
        Assert.Equal("medium", scaled.Observed.Size);
        Assert.Equal(2, scaled.Observed.ProcessStarts);
        Assert.Equal("4Gi", (string?)world.Get("PersistentVolumeClaim", instanceId + "-data")!["spec"]!["resources"]!["requests"]!["storage"]);
        Assert.Equal("500m", (string?)world.Get("StatefulSet", instanceId)!["spec"]!["template"]!["spec"]!["containers"]![0]!["resources"]!["limits"]!["cpu"]);
        Assert.Equal("through everything", await Customer.ReadAsync(scaled.Observed.ProbeEndpoint!, world.Password, "kept"));

        var restarted = await provisioner.ApplySucceedsAsync(world.Spec(instanceId, size: "medium", generation: 3) with { Restarts = 1 });
        Assert.Equal(1, restarted.Observed.Restarts);
        Assert.Equal(3, restarted.Observed.ProcessStarts);
        Assert.Equal("1", (string?)world.Get("StatefulSet", instanceId)!["spec"]!["template"]!["metadata"]!["annotations"]!["controlplane.io/restarts"]);
        Assert.Equal("through everything", await Customer.ReadAsync(restarted.Observed.ProbeEndpoint!, world.Password, "kept"));

        var stopped = await provisioner.ApplySucceedsAsync(world.Spec(instanceId, size: "medium", generation: 4) with { Restarts = 1, Goal = DeploymentGoal.Stopped });
        Assert.Equal(DeploymentStatus.Stopped, stopped.Observed.Status);
        Assert.Equal(0, (int?)world.Get("StatefulSet", instanceId)!["spec"]!["replicas"]);
        Assert.Empty(world.All("Pod"));
        Assert.Equal(claimUid, (string?)world.Get("PersistentVolumeClaim", instanceId + "-data")!["metadata"]!["uid"]);

        var started = await provisioner.ApplySucceedsAsync(world.Spec(instanceId, size: "medium", generation: 5) with { Restarts = 1 });
        Assert.Equal(DeploymentStatus.Running, started.Observed.Status);
        Assert.Equal("through everything", await Customer.ReadAsync(started.Observed.ProbeEndpoint!, world.Password, "kept"));

        var deleted = await provisioner.ApplySucceedsAsync(world.Spec(instanceId, size: "medium", generation: 6) with { Restarts = 1, Goal = DeploymentGoal.Absent });
        Assert.Equal(DeploymentStatus.Absent, deleted.Observed.Status);
        foreach (var kind in new[] { "StatefulSet", "Service", "Secret", "PersistentVolumeClaim", "Pod" })
        {
            Assert.Empty(world.All(kind));
        }

        Assert.Equal([instanceId + "-deleted"], world.All("ConfigMap").Select(map => (string?)map["metadata"]!["name"]));
        Assert.False(Directory.Exists(world.Cluster.Kubelet.VolumeDirectory(world.Namespace, instanceId + "-data")));
        Assert.Empty(world.Cluster.Kubelet.ProcessIds);

        // A late copy of the create (an older generation) must not bring it back.
        var late = await provisioner.ApplyAsync(world.Spec(instanceId, generation: 1));
        Assert.IsType<DeploymentApplied>(late);
        Assert.Empty(world.All("StatefulSet"));
    }

    [Fact]
    public async Task A_provisioner_that_dies_between_steps_is_replaced_by_one_that_converges_without_duplicates()
    {
        await using var world = await KubernetesWorld.StartAsync(output);
        var first = await world.StartProvisionerAsync();
        var instanceId = Specs.NewId("ins");
        var spec = world.Spec(instanceId);
        var plan = await first.Backend<KubernetesBackend>().PlanAsync(spec, CancellationToken.None);
        Assert.Equal(3, plan.Steps.Count);
        // The tenant's namespace and the instance's objects are applied; the provisioner dies before it waits for the pod.
        await plan.Steps[0].ExecuteAsync(CancellationToken.None);
        await plan.Steps[1].ExecuteAsync(CancellationToken.None);
        await first.DisposeAsync();

        var second = await world.StartProvisionerAsync();
        var replan = await second.Backend<KubernetesBackend>().PlanAsync(spec, CancellationToken.None);
        Assert.DoesNotContain(replan.Steps, step => step.Name.StartsWith("Prepare", StringComparison.Ordinal) || step.Name.StartsWith("Start", StringComparison.Ordinal));
        // And the command arrives twice more (a redelivery): nothing is created again.
        var applied = await second.ApplySucceedsAsync(spec);
        await second.ApplySucceedsAsync(spec);

        Assert.Equal(DeploymentStatus.Running, (await RunningAsync(second.Backend<KubernetesBackend>(), spec, applied.Observed)).Status);
        Assert.Single(world.All("StatefulSet"));
        Assert.Single(world.All("Pod"));
        Assert.Single(world.All("PersistentVolumeClaim"));
        Assert.Single(world.Cluster.Kubelet.ProcessIds);
        Assert.Equal(1, applied.Observed.ProcessStarts);
    }

    [Fact]
    public async Task Throttling_and_server_errors_are_retried_by_the_client_and_the_step_pipeline()
    {
        await using var world = await KubernetesWorld.StartAsync(output);
        var refusals = 0;
        world.Cluster.Faults = request =>
            request.Method == "PATCH" && request.Path.Value!.Contains("/statefulsets/", StringComparison.Ordinal) && Interlocked.Increment(ref refusals) <= 5
                ? (refusals % 2 == 0 ? 500 : 429)
                : null;
        var provisioner = await world.StartProvisionerAsync();
        var instanceId = Specs.NewId("ins");

        var applied = await provisioner.ApplySucceedsAsync(world.Spec(instanceId));

        Assert.Equal(DeploymentStatus.Running, (await RunningAsync(provisioner.Backend<KubernetesBackend>(), world.Spec(instanceId), applied.Observed)).Status);
        Assert.True(refusals > 5);
        Assert.Contains(provisioner.LogLines, line => line.Contains("Kubernetes API answered 429", StringComparison.Ordinal));
        Assert.Single(world.All("StatefulSet"));
    }

    [Fact]
    public async Task A_tenant_over_its_quota_fails_with_a_reason_a_person_can_act_on()
    {
        await using var world = await KubernetesWorld.StartAsync(output);
        world.Settings["Provisioner:Kubernetes:Quota:StorageGb"] = "3";
        var provisioner = await world.StartProvisionerAsync();
        await provisioner.ApplySucceedsAsync(world.Spec(Specs.NewId("ins")));

        var outcome = await provisioner.ApplyAsync(world.Spec(Specs.NewId("ins")));

        var failed = Assert.IsType<DeploymentFailed>(outcome);
        Assert.Equal("quota-exceeded", failed.ErrorCode);
        Assert.Contains("Provisioner:Kubernetes:Quota", failed.ErrorMessage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_upgrade_patches_the_image_in_place_and_keeps_the_volume_and_its_data()
    {
        await using var world = await KubernetesWorld.StartAsync(output);
        // A second version of the same product; the fake kubelet runs every tag of the image as the same Garnet.
        world.Settings["Catalog:Products:garnet:Versions:2.2.9:Home"] = "products/garnet";
        world.Settings["Catalog:Products:garnet:Versions:2.2.9:Image"] = "ghcr.io/microsoft/garnet:2.2.9";
        var provisioner = await world.StartProvisionerAsync();
        var instanceId = Specs.NewId("ins");
        var first = await provisioner.ApplySucceedsAsync(world.Spec(instanceId));
        await Customer.WriteAsync(first.Observed.ProbeEndpoint!, world.Password, "kept", "across versions");
        var claimUid = (string?)world.Get("PersistentVolumeClaim", instanceId + "-data")!["metadata"]!["uid"];

        var upgraded = await provisioner.ApplySucceedsAsync(world.Spec(instanceId, generation: 2) with { Version = "2.2.9" });

        Assert.Equal("2.2.9", upgraded.Observed.Version);
        Assert.Equal(2, upgraded.Observed.ProcessStarts);
        Assert.Equal("ghcr.io/microsoft/garnet:2.2.9", (string?)world.Get("StatefulSet", instanceId)!["spec"]!["template"]!["spec"]!["containers"]![0]!["image"]);
        Assert.Equal(claimUid, (string?)world.Get("PersistentVolumeClaim", instanceId + "-data")!["metadata"]!["uid"]);
        Assert.Equal("across versions", await Customer.ReadAsync(upgraded.Observed.ProbeEndpoint!, world.Password, "kept"));
        Assert.Single(world.All("StatefulSet"));
    }

    [Fact]
    public async Task A_namespace_with_the_tenants_name_that_is_not_the_tenants_is_neither_used_nor_deleted()
    {
        await using var world = await KubernetesWorld.StartAsync(output);
        world.Cluster.Store.Create(
            new FakeKubernetes.ObjectKey(FakeKubernetes.ResourceType.Of("Namespace"), null, world.Namespace),
            new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Namespace", ["metadata"] = new JsonObject { ["name"] = world.Namespace, ["labels"] = new JsonObject { ["team"] = "finance" } } },
            "kubectl");
        var provisioner = await world.StartProvisionerAsync();
        var spec = world.Spec(Specs.NewId("ins"));

        var refused = Assert.IsType<DeploymentFailed>(await provisioner.ApplyAsync(spec));
        Assert.Equal("kubernetes-foreign-namespace", refused.ErrorCode);
        var closing = await Assert.ThrowsAsync<DeploymentFailedException>(() => provisioner.Backend<KubernetesBackend>().CloseTenantAsync(spec, CancellationToken.None));
        Assert.Equal("kubernetes-foreign-namespace", closing.Code);

        Assert.Equal("finance", (string?)world.Get("Namespace", world.Namespace)!["metadata"]!["labels"]!["team"]);
        Assert.Null(world.Get("Namespace", world.Namespace)!["metadata"]!["labels"]!["controlplane.io/tenant"]);
        Assert.Empty(world.All("StatefulSet"));
    }

    [Fact]
    public async Task Closing_a_tenant_removes_its_namespace_and_everything_in_it()
    {
        await using var world = await KubernetesWorld.StartAsync(output);
        var provisioner = await world.StartProvisionerAsync();
        var spec = world.Spec(Specs.NewId("ins"));
        await provisioner.ApplySucceedsAsync(spec);

        await provisioner.Backend<KubernetesBackend>().CloseTenantAsync(spec, CancellationToken.None);

        Assert.Null(world.Get("Namespace", world.Namespace));
        Assert.DoesNotContain(world.Cluster.Store.Keys(), key => key.Namespace == world.Namespace);
        Assert.Empty(world.Cluster.Kubelet.ProcessIds);
    }
}
