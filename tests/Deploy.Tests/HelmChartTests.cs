using System.Text.Json.Nodes;

namespace Deploy.Tests;

public sealed class HelmChartTests
{
    [Theory]
    [InlineData]
    [InlineData("postgres.existingSecret=managed-postgres", "postgres.connectionStringKey=uri")]
    [InlineData("kubernetesBackend.enabled=false", "controlPlane.defaultBackend=azure", "azureBackend.enabled=true",
        "azureBackend.subscriptionId=00000000-0000-0000-0000-000000000001", "azureBackend.location=westeurope",
        "azureBackend.managedEnvironmentId=/subscriptions/x/resourceGroups/y/providers/Microsoft.App/managedEnvironments/z")]
    [InlineData("stripe.existingSecret=stripe", "dapr.pubsub.existingSecret=redis", "networkPolicy.enabled=false")]
    public async Task The_chart_lints_strictly_and_renders_with_the_default_values_and_each_variant(params string[] settings)
    {
        var arguments = new List<string> { "lint", "--strict", Tools.Chart };
        foreach (var setting in settings)
        {
            arguments.AddRange(["--set", setting]);
        }

        var (exitCode, output, error) = await Tools.RunAsync(Tools.Helm(), [.. arguments]);
        Assert.True(exitCode == 0, $"helm lint --strict failed: {output}{error}");
        var rendered = await Manifests.RenderAsync(settings);
        Assert.NotEmpty(rendered.All("Deployment"));
    }

    [Fact]
    public async Task Silos_carry_dapr_annotations_orleans_ports_pod_addresses_probes_and_a_grace_period_longer_than_their_shutdown()
    {
        var rendered = await Manifests.RenderAsync();
        var silos = rendered.One("Deployment", "-api");
        var pod = silos["spec"]!["template"]!;
        var annotations = pod["metadata"]!["annotations"]!;
        Assert.Equal("true", (string?)annotations["dapr.io/enabled"]);
        Assert.Equal("controlplane", (string?)annotations["dapr.io/app-id"]);
        // The sidecar calls the silo on its own loopback port with the app token; the Dapr routes are not on the API's port.
        Assert.Equal("8081", (string?)annotations["dapr.io/app-port"]);
        Assert.Equal("dapr-app-token", (string?)annotations["dapr.io/app-token-secret"]);
        var container = pod["spec"]!["containers"]![0]!;
        Assert.Equal(["8080", "11111", "30000"], container["ports"]!.AsArray().Select(port => (string?)port!["containerPort"]));
        var env = Env(container);
        Assert.Equal("8081", (string?)env["Provisioning__Dapr__AppPort"]!["value"]);
        Assert.Equal("*.svc.cluster.local", (string?)env["Provisioning__Dapr__EndpointHosts__0"]!["value"]);
        Assert.Equal("status.podIP", (string?)env["POD_IP"]!["valueFrom"]!["fieldRef"]!["fieldPath"]);
        Assert.Equal("metadata.name", (string?)env["POD_NAME"]!["valueFrom"]!["fieldRef"]!["fieldPath"]);
        Assert.Equal("$(POD_IP)", (string?)env["Orleans__AdvertisedIPAddress"]!["value"]);
        Assert.Equal("0.0.0.0", (string?)env["Orleans__ListenAddress"]!["value"]);
        Assert.Equal("11111", (string?)env["Orleans__SiloPort"]!["value"]);
        Assert.Equal("Cluster", (string?)env["ControlPlane__Mode"]!["value"]);
        Assert.Equal("Dapr", (string?)env["Provisioning__Transport"]!["value"]);
        Assert.Equal("kubernetes", (string?)env["Instances__DefaultBackend"]!["value"]);
        Assert.Equal("controlplane-postgres", (string?)env["ConnectionStrings__ControlPlane"]!["valueFrom"]!["secretKeyRef"]!["name"]);
        Assert.Equal("/healthz", (string?)container["startupProbe"]!["httpGet"]!["path"]);
        Assert.Equal("/readyz", (string?)container["readinessProbe"]!["httpGet"]!["path"]);
        Assert.Equal("/healthz", (string?)container["livenessProbe"]!["httpGet"]!["path"]);
        Assert.NotNull(container["resources"]!["limits"]!["memory"]);
        Assert.Equal("true", (string?)container["securityContext"]!["readOnlyRootFilesystem"]);
        Assert.Equal("true", (string?)pod["spec"]!["securityContext"]!["runAsNonRoot"]);
        var shutdown = TimeSpan.Parse((string)env["HostOptions__ShutdownTimeout"]!["value"]!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(int.Parse((string)pod["spec"]!["terminationGracePeriodSeconds"]!, System.Globalization.CultureInfo.InvariantCulture) > shutdown.TotalSeconds);
        Assert.Equal("2", (string?)rendered.One("PodDisruptionBudget", "-api")["spec"]!["minAvailable"]);

        var provisioner = rendered.One("Deployment", "-provisioner")["spec"]!["template"]!;
        Assert.Equal("provisioner", (string?)provisioner["metadata"]!["annotations"]!["dapr.io/app-id"]);
        Assert.Equal("true", (string?)Env(provisioner["spec"]!["containers"]![0]!)["Provisioner__Kubernetes__Enabled"]!["value"]);
        Assert.Equal(["pubsub", "secrets"], rendered.All("Component").Select(component => (string?)component["metadata"]!["name"]));
        // The production values speak TLS to the Redis behind pub/sub.
        Assert.Equal("true", (string?)rendered.One("Component", "pubsub")["spec"]!["metadata"]!.AsArray().Single(entry => (string?)entry!["name"] == "enableTLS")!["value"]);
        Assert.Single(rendered.All("Resiliency"));
        Assert.Equal(3, rendered.All("Subscription").Count());
    }

    [Fact]
    public async Task The_provisioner_may_touch_only_what_the_kubernetes_backend_creates_and_nothing_without_it()
    {
        var rendered = await Manifests.RenderAsync();
        var role = rendered.One("ClusterRole");
        var granted = role["rules"]!.AsArray()
            .SelectMany(rule => rule!["resources"]!.AsArray().Select(resource => ((string?)resource, rule["verbs"]!.AsArray().Select(verb => (string?)verb).ToHashSet())))
            .ToDictionary(pair => pair.Item1!, pair => pair.Item2);
        Assert.Equal(
            ["configmaps", "limitranges", "namespaces", "networkpolicies", "persistentvolumeclaims", "pods", "resourcequotas", "secrets", "services", "statefulsets"],
            granted.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(["get"], granted["pods"]);
        Assert.All(granted.Where(pair => pair.Key != "pods"), pair => Assert.Equal(["create", "delete", "get", "patch"], pair.Value.Order(StringComparer.Ordinal)));
        Assert.DoesNotContain(role["rules"]!.AsArray(), rule => rule!["verbs"]!.AsArray().Any(verb => (string?)verb is "*" or "list" or "watch" or "escalate" or "bind"));
        Assert.Equal("release-controlplane-provisioner", (string?)rendered.One("ClusterRoleBinding")["subjects"]![0]!["name"]);
        // The ClusterRole's "where": the API server denies the provisioner's writes outside the tenants' namespaces.
        var policy = rendered.One("ValidatingAdmissionPolicy")["spec"]!;
        Assert.Contains("system:serviceaccount:controlplane:release-controlplane-provisioner", (string?)policy["matchConditions"]![0]!["expression"], StringComparison.Ordinal);
        Assert.Contains("startsWith(\"tenant-\")", (string?)policy["validations"]![0]!["expression"], StringComparison.Ordinal);
        Assert.Equal(
            granted.Keys.Where(resource => resource != "pods").Order(StringComparer.Ordinal),
            policy["matchConstraints"]!["resourceRules"]![0]!["resources"]!.AsArray().Select(resource => (string?)resource).Order(StringComparer.Ordinal));
        Assert.Equal(["Deny"], rendered.One("ValidatingAdmissionPolicyBinding")["spec"]!["validationActions"]!.AsArray().Select(action => (string?)action));
        var secrets = rendered.One("Role");
        Assert.Equal(["provisioning-secret-key", "instance-secret-keys"], secrets["rules"]![0]!["resourceNames"]!.AsArray().Select(name => (string?)name));

        var without = await Manifests.RenderAsync("kubernetesBackend.enabled=false");
        Assert.Empty(without.All("ClusterRole"));
        Assert.Empty(without.All("ClusterRoleBinding"));
        Assert.Empty(without.All("ValidatingAdmissionPolicy"));
        Assert.Equal("false", (string?)without.One("Deployment", "-provisioner")["spec"]!["template"]!["spec"]!["automountServiceAccountToken"]);
    }

    [Fact]
    public async Task Network_policies_deny_by_default_and_open_only_the_api_and_the_silo_ports_between_silos()
    {
        var rendered = await Manifests.RenderAsync("networkPolicy.apiIngressNamespaceLabels.team=ingress");
        var policies = rendered.All("NetworkPolicy").ToList();
        Assert.Equal(3, policies.Count);
        Assert.Null(rendered.One("NetworkPolicy", "-default-deny")["spec"]!["ingress"]);
        var api = rendered.One("NetworkPolicy", "-api")["spec"]!["ingress"]!.AsArray();
        Assert.Equal("ingress", (string?)api[0]!["from"]![0]!["namespaceSelector"]!["matchLabels"]!["team"]);
        Assert.Equal(["11111", "30000"], api[1]!["ports"]!.AsArray().Select(port => (string?)port!["port"]));
        Assert.Equal("controlplane", (string?)api[1]!["from"]![0]!["podSelector"]!["matchLabels"]!["app.kubernetes.io/name"]);
        Assert.Null(rendered.One("NetworkPolicy", "-provisioner")["spec"]!["ingress"]);
    }

    [Fact]
    public async Task No_secret_value_is_rendered_secrets_arrive_only_by_reference()
    {
        var rendered = await Manifests.RenderAsync("stripe.existingSecret=stripe-keys", "dapr.pubsub.existingSecret=redis-auth", "postgres.existingSecret=managed-postgres");

        Assert.Empty(rendered.All("Secret"));
        var env = rendered.All("Deployment").SelectMany(deployment => deployment["spec"]!["template"]!["spec"]!["containers"]!.AsArray())
            .SelectMany(container => container!["env"]!.AsArray()).ToList();
        foreach (var secretSetting in new[] { "ConnectionStrings__ControlPlane", "Stripe__ApiKey" })
        {
            var variable = Assert.Single(env, variable => (string?)variable!["name"] == secretSetting)!;
            Assert.Null(variable["value"]);
            Assert.NotNull(variable["valueFrom"]!["secretKeyRef"]);
        }

        Assert.Equal("redis-auth", (string?)rendered.One("Component", "pubsub")["spec"]!["metadata"]!.AsArray()
            .Single(item => (string?)item!["name"] == "redisPassword")!["secretKeyRef"]!["name"]);
        Assert.DoesNotMatch("(?i)password:\\s*\\S|apiKey:\\s*sk_|Password=", rendered.Yaml);
    }

    [Theory]
    [InlineData("controlPlane.defaultBackend=elsewhere", "controlPlane.defaultBackend")]
    [InlineData("controlPlane.replicas=0", "controlPlane.replicas")]
    [InlineData("kubernetesBackend.namespacePrefix=Tenants_", "kubernetesBackend.namespacePrefix")]
    [InlineData("postgres.existingSecret=", "postgres.existingSecret")]
    [InlineData("controlPlane.password=hunter2", "password")]
    public async Task The_schema_rejects_a_wrong_value_naming_it(string setting, string named)
    {
        var (exitCode, _, error) = await Tools.RunAsync(Tools.Helm(), "template", "release", Tools.Chart, "--set", setting);

        Assert.NotEqual(0, exitCode);
        Assert.Contains(named, error, StringComparison.Ordinal);
    }

    private static Dictionary<string, JsonNode> Env(JsonNode container) =>
        container["env"]!.AsArray().ToDictionary(variable => (string)variable!["name"]!, variable => variable!);
}
