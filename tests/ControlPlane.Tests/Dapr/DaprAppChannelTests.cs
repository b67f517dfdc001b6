using ControlPlane.Hosting;
using ControlPlane.Provisioning.Dapr;
using Microsoft.Extensions.Configuration;
using Provisioner.Deployments;
using Provisioner.Messaging;
using Provisioner.Messaging.Dapr;

namespace ControlPlane.Tests.Dapr;

/// <summary>What the control plane takes from its Dapr routes, and what it needs before it serves them.</summary>
public sealed class DaprAppChannelTests
{
    private static readonly DateTimeOffset s_now = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void The_Dapr_transport_does_not_start_without_the_sidecars_app_token_and_compares_it_in_constant_time()
    {
        var withoutToken = new DaprTransportOptionsValidator().Validate(null, new DaprTransportOptions { SecretKey = Convert.ToBase64String(new byte[32]), AppApiToken = null });
        var withToken = new DaprTransportOptionsValidator().Validate(null, new DaprTransportOptions { SecretKey = Convert.ToBase64String(new byte[32]), AppApiToken = "0123456789abcdef0123" });

        Assert.True(withoutToken.Failed || Environment.GetEnvironmentVariable(DaprAppToken.Variable) is { Length: >= 16 });
        Assert.Contains(withoutToken.Failures ?? [], failure => failure.Contains("APP_API_TOKEN", StringComparison.Ordinal) && failure.Contains("AppApiToken", StringComparison.Ordinal));
        Assert.True(withToken.Succeeded);
        Assert.False(DaprAppToken.Matches(null, ""));
        Assert.False(DaprAppToken.Matches("", ""));
        Assert.False(DaprAppToken.Matches("0123456789abcdef", "0123456789abcdeF"));
        Assert.True(DaprAppToken.Matches("0123456789abcdef", "0123456789abcdef"));
    }

    [Theory]
    [InlineData(null, "set it to the port the sidecar calls")]
    [InlineData("0", "set it to the port the sidecar calls")]
    [InlineData("http", "set it to the port the sidecar calls")]
    public void The_app_channel_needs_its_own_port(string? port, string advice)
    {
        var refused = Assert.Throws<StartupFailedException>(() => DaprAppChannel.From(Settings(("Provisioning:Dapr:AppPort", port))));
        Assert.Contains(advice, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_app_channel_listens_on_loopback_unless_told_otherwise()
    {
        var channel = DaprAppChannel.From(Settings(("Provisioning:Dapr:AppPort", "8081")));
        Assert.Equal("http://127.0.0.1:8081", channel.Url);
        Assert.Throws<StartupFailedException>(() => DaprAppChannel.From(Settings(("Provisioning:Dapr:AppPort", "8081"), ("Provisioning:Dapr:AppListenAddress", "everywhere"))));
    }

    [Theory]
    [InlineData("attacker.example", false)]
    [InlineData("10.1.2.3", false)]
    [InlineData("svc.cluster.local", false)]
    [InlineData("evilsvc.cluster.local", false)]
    [InlineData("127.0.0.1", true)]
    [InlineData("ins-1.instances.svc.cluster.local", true)]
    [InlineData("10.20.0.7", true)]
    [InlineData("10.21.0.7", false)]
    public void An_endpoint_is_taken_only_on_a_host_a_backend_may_advertise(string host, bool taken)
    {
        var channel = DaprAppChannel.From(Settings(("Provisioning:Dapr:AppPort", "8081"), ("Provisioning:Dapr:EndpointHosts:0", "*.svc.cluster.local"), ("Provisioning:Dapr:EndpointHosts:1", "10.20.0.0/16")));
        var sent = Applied(s_now, new Endpoint { Host = host, Port = 6379 });

        var (received, refused) = channel.Check(sent);

        var observed = ((DeploymentApplied)received).Observed;
        Assert.Equal(taken ? sent.Observed.Endpoint : null, observed.Endpoint);
        Assert.Equal(taken ? null : "endpoint", refused is null ? null : "endpoint");
        Assert.Equal(DeploymentStatus.Running, observed.Status);
    }

    private static DeploymentApplied Applied(DateTimeOffset at, Endpoint? endpoint) => new()
    {
        InstanceId = "ins-1",
        Generation = 1,
        Purpose = ApplyPurpose.Reconcile,
        OccurredAt = at,
        Observed = new ObservedDeployment { Status = DeploymentStatus.Running, Endpoint = endpoint },
    };

    private static IConfiguration Settings(params (string Key, string? Value)[] settings) =>
        new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build();
}
