using System.Globalization;
using ControlPlane.Tests.Support;

namespace ControlPlane.Tests.Cluster;

/// <summary>A silo that cannot join its cluster refuses to start, says why, and never prints the database password.</summary>
public sealed class ClusterStartupTests : IDisposable
{
    private readonly TestDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public async Task Cluster_mode_without_a_connection_string_refuses_to_start()
    {
        await using var silo = new ControlPlaneProcess(_directory.Path, Ports.InstanceRange(), new Dictionary<string, string>
        {
            ["ControlPlane:Mode"] = "Cluster",
        });

        var refusal = await Assert.ThrowsAsync<InvalidOperationException>(silo.StartAsync);

        Assert.Contains("exited with code 1", refusal.Message, StringComparison.Ordinal);
        Assert.Contains("ConnectionStrings:ControlPlane is not set", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cluster_mode_with_a_malformed_connection_string_says_so_without_echoing_it()
    {
        await using var silo = new ControlPlaneProcess(_directory.Path, Ports.InstanceRange(), new Dictionary<string, string>
        {
            ["ControlPlane:Mode"] = "Cluster",
            ["ConnectionStrings:ControlPlane"] = "Host=127.0.0.1;Passwrd=s3cret-never-printed",
        });

        var refusal = await Assert.ThrowsAsync<InvalidOperationException>(silo.StartAsync);

        Assert.Contains("exited with code 1", refusal.Message, StringComparison.Ordinal);
        Assert.Contains("the connection string is malformed", refusal.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-never-printed", refusal.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", refusal.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cluster_mode_with_an_unreachable_database_names_the_server_but_not_the_password()
    {
        const string password = "s3cret-never-printed";
        var closedPort = Ports.Free();
        await using var silo = new ControlPlaneProcess(_directory.Path, Ports.InstanceRange(), new Dictionary<string, string>
        {
            ["ControlPlane:Mode"] = "Cluster",
            ["ConnectionStrings:ControlPlane"] = string.Create(
                CultureInfo.InvariantCulture, $"Host=127.0.0.1;Port={closedPort};Username=controlplane;Password={password};Database=cp;Timeout=3"),
        });

        var refusal = await Assert.ThrowsAsync<InvalidOperationException>(silo.StartAsync);

        Assert.Contains("exited with code 1", refusal.Message, StringComparison.Ordinal);
        Assert.Contains($"Could not prepare the PostgreSQL database cp on 127.0.0.1:{closedPort}", refusal.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(password, refusal.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", refusal.Message, StringComparison.Ordinal);
    }
}
