using System.Text.Json.Nodes;
using Provisioner.Azure;
using Provisioner.Cloud.Tests.Support;
using Provisioner.Deployments;
using Provisioner.Health;
using Provisioner.Messaging;
using Xunit.Abstractions;

namespace Provisioner.Cloud.Tests.Azure;

public sealed class AzureBackendTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Create_puts_a_tagged_group_and_a_container_app_with_its_secret_and_tcp_ingress_and_runs_when_ping_answers()
    {
        await using var world = await AzureWorld.StartAsync(output);
        var provisioner = await world.StartProvisionerAsync();
        var instanceId = Specs.NewId("ins");

        var applied = await provisioner.ApplySucceedsAsync(world.Spec(instanceId));

        var observed = applied.Observed;
        Assert.Equal(DeploymentStatus.Running, observed.Status);
        Assert.StartsWith("127.78.", observed.Endpoint!.Host, StringComparison.Ordinal);
        Assert.Equal(6379, observed.Endpoint.Port);
        Assert.Equal(observed.Endpoint, observed.ProbeEndpoint);
        Assert.Equal(1, observed.ProcessStarts);
        Assert.True((await RespPingProbe.PingAsync(observed.Endpoint.Host, 6379, world.Password, TimeSpan.FromSeconds(5), CancellationToken.None)).Answered);
        Assert.True((await RespPingProbe.PingAsync(observed.Endpoint.Host, 6379, InstanceAccess.PlatformUser, Specs.PlatformPassword, TimeSpan.FromSeconds(5), CancellationToken.None)).Answered);

        Assert.Equal([world.Group], world.Arm.ResourceGroups());
        var app = world.Arm.StoredApp(world.Group, instanceId)!;
        Assert.Equal(world.TenantId, (string?)app["tags"]![ContainerAppManifest.TenantTag]);
        var properties = app["properties"]!;
        var secret = Assert.Single(properties["configuration"]!["secrets"]!.AsArray())!;
        Assert.Equal(InstanceAccess.AccessControlFile(world.Spec(instanceId)), (string?)secret["value"]);
        var ingress = properties["configuration"]!["ingress"]!;
        Assert.Equal("tcp", (string?)ingress["transport"]);
        Assert.Equal(6379, (int?)ingress["exposedPort"]);
        var container = properties["template"]!["containers"]![0]!;
        Assert.Equal("ghcr.io/microsoft/garnet:2.2.8", (string?)container["image"]);
        Assert.Equal(0.25, (double?)container["resources"]!["cpu"]);
        Assert.Equal("0.5Gi", (string?)container["resources"]!["memory"]);
        Assert.Equal((string?)secret["name"], (string?)container["env"]![0]!["secretRef"]);
        Assert.Equal(instanceId, (string?)container["volumeMounts"]![0]!["subPath"]);
        // No password travels to ARM: the app's secret holds only their hashes.
        Assert.DoesNotContain(world.Arm.Bodies, body => body.Contains(world.Password, StringComparison.Ordinal) || body.Contains(Specs.PlatformPassword, StringComparison.Ordinal));
        Assert.Contains(world.Arm.Requests, request => request.Contains("containerappOperationStatuses", StringComparison.Ordinal));

        var again = await provisioner.Backend<AzureBackend>().PlanAsync(world.Spec(instanceId), CancellationToken.None);
        Assert.True(again.IsUpToDate, $"{string.Join(", ", again.Steps.Select(step => step.Name))}: {again.Drift}");
    }

    [Fact]
    public async Task Scale_restart_stop_and_start_keep_the_data_delete_cleans_up_and_closing_the_tenant_removes_its_group()
    {
        await using var world = await AzureWorld.StartAsync(output);
        var provisioner = await world.StartProvisionerAsync();
        var instanceId = Specs.NewId("ins");
        var first = await provisioner.ApplySucceedsAsync(world.Spec(instanceId));
        await Customer.WriteAsync(first.Observed.Endpoint!, world.Password, "kept", "in azure files");

        var scaled = await provisioner.ApplySucceedsAsync(world.Spec(instanceId, size: "medium", generation: 2));
        Assert.Equal("medium", scaled.Observed.Size);
        Assert.Equal(2, scaled.Observed.ProcessStarts);
        Assert.Equal("1Gi", (string?)world.Arm.StoredApp(world.Group, instanceId)!["properties"]!["template"]!["containers"]![0]!["resources"]!["memory"]);
        Assert.Equal(first.Observed.Endpoint, scaled.Observed.Endpoint);
        Assert.Equal("in azure files", await Customer.ReadAsync(scaled.Observed.Endpoint!, world.Password, "kept"));

        var restarted = await provisioner.ApplySucceedsAsync(world.Spec(instanceId, size: "medium", generation: 3) with { Restarts = 1 });
        Assert.Equal(1, restarted.Observed.Restarts);
        Assert.Equal(3, restarted.Observed.ProcessStarts);
        Assert.Equal($"{instanceId}--r3", (string?)world.Arm.StoredApp(world.Group, instanceId)!["properties"]!["latestRevisionName"]);
        Assert.Equal("in azure files", await Customer.ReadAsync(restarted.Observed.Endpoint!, world.Password, "kept"));

        var stopped = await provisioner.ApplySucceedsAsync(world.Spec(instanceId, size: "medium", generation: 4) with { Restarts = 1, Goal = DeploymentGoal.Stopped });
        Assert.Equal(DeploymentStatus.Stopped, stopped.Observed.Status);
        Assert.Empty(world.Arm.Runner.ProcessIds);

        var started = await provisioner.ApplySucceedsAsync(world.Spec(instanceId, size: "medium", generation: 5) with { Restarts = 1 });
        Assert.Equal(DeploymentStatus.Running, started.Observed.Status);
        Assert.Equal("in azure files", await Customer.ReadAsync(started.Observed.Endpoint!, world.Password, "kept"));

        var deleted = await provisioner.ApplySucceedsAsync(world.Spec(instanceId, generation: 6) with { Goal = DeploymentGoal.Absent });
        Assert.Equal(DeploymentStatus.Absent, deleted.Observed.Status);
        Assert.Empty(world.Arm.Apps());
        Assert.Empty(world.Arm.Runner.ProcessIds);

        // A late copy of the create (an older generation) must not bring it back.
        Assert.IsType<DeploymentApplied>(await provisioner.ApplyAsync(world.Spec(instanceId, generation: 1)));
        Assert.Empty(world.Arm.Apps());

        await provisioner.Backend<AzureBackend>().CloseTenantAsync(world.Spec(instanceId), CancellationToken.None);
        Assert.Empty(world.Arm.ResourceGroups());
    }

    [Fact]
    public async Task A_resource_group_with_the_tenants_name_that_is_not_the_tenants_is_neither_used_nor_deleted()
    {
        await using var world = await AzureWorld.StartAsync(output);
        world.Arm.AddGroup(world.Group, new Dictionary<string, string> { ["owner"] = "finance team" });
        var provisioner = await world.StartProvisionerAsync();
        var instanceId = Specs.NewId("ins");

        var refused = Assert.IsType<DeploymentFailed>(await provisioner.ApplyAsync(world.Spec(instanceId)));
        Assert.Equal("azure-foreign-group", refused.ErrorCode);
        var closing = await Assert.ThrowsAsync<DeploymentFailedException>(
            () => provisioner.Backend<AzureBackend>().CloseTenantAsync(world.Spec(instanceId), CancellationToken.None));
        Assert.Equal("azure-foreign-group", closing.Code);

        Assert.Contains(world.Group, world.Arm.ResourceGroups());
        Assert.Empty(world.Arm.Apps());
    }

    [Fact]
    public async Task Throttling_server_errors_and_conflicts_are_retried_until_the_operation_goes_through()
    {
        await using var world = await AzureWorld.StartAsync(output);
        var refusals = 0;
        world.Arm.Faults = request =>
            request.Method == "PUT" && request.Path.Value!.Contains("containerApps", StringComparison.OrdinalIgnoreCase) && Interlocked.Increment(ref refusals) <= 5
                ? new[] { 429, 500, 409, 429, 500 }[refusals - 1]
                : null;
        var provisioner = await world.StartProvisionerAsync();

        var applied = await provisioner.ApplySucceedsAsync(world.Spec(Specs.NewId("ins")));

        Assert.Equal(DeploymentStatus.Running, applied.Observed.Status);
        Assert.True(refusals > 5);
        Assert.Contains(provisioner.LogLines, line => line.Contains("Azure Resource Manager answered 429", StringComparison.Ordinal));
        // A 409 (another operation on the app) is not the client's to retry: the step fails as transient and the step's pipeline runs it again.
        Assert.Contains(provisioner.LogLines, line => line.Contains("409 ContainerAppOperationInProgress", StringComparison.Ordinal));
        Assert.Single(world.Arm.Apps());
    }

    [Fact]
    public async Task A_provisioner_that_dies_while_arm_runs_its_operation_is_replaced_by_one_that_converges()
    {
        await using var world = await AzureWorld.StartAsync(output);
        world.Arm.OperationDelay = TimeSpan.FromSeconds(2);
        var first = await world.StartProvisionerAsync();
        var instanceId = Specs.NewId("ins");
        var spec = world.Spec(instanceId);
        var plan = await first.Backend<AzureBackend>().PlanAsync(spec, CancellationToken.None);
        await plan.Steps[0].ExecuteAsync(CancellationToken.None);
        using (var dies = new CancellationTokenSource(TimeSpan.FromMilliseconds(500)))
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => plan.Steps[1].ExecuteAsync(dies.Token));
        }

        await first.DisposeAsync();
        var second = await world.StartProvisionerAsync();

        // ARM still runs the first PUT (and would refuse another with 409): the second provisioner waits for it to end.
        var applied = await second.ApplySucceedsAsync(spec);

        Assert.Equal(DeploymentStatus.Running, applied.Observed.Status);
        Assert.Single(world.Arm.Apps());
        Assert.Single(world.Arm.Runner.ProcessIds);
        Assert.Contains(second.LogLines, line => line.Contains("waiting for ARM's running operation to end", StringComparison.Ordinal));
    }
}
