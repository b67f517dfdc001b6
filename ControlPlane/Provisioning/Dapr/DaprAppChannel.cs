using System.Globalization;
using System.Net;
using ControlPlane.Hosting;
using Provisioner.Messaging;
using Provisioner.Messaging.Dapr;

namespace ControlPlane.Provisioning.Dapr;

/// <summary>
/// Where the control plane's sidecar reaches it (daprd's <c>--app-port</c>), apart from the public API: the Dapr routes
/// answer only on this listener, which binds to loopback by default (the sidecar shares the pod's or the host's
/// network), and only with the sidecar's app token. Section <c>Provisioning:Dapr</c>, beside
/// <see cref="DaprTransportOptions"/>.
/// </summary>
public sealed class DaprAppChannel
{
    public const string AppPortSetting = DaprTransportOptions.SectionName + ":AppPort";
    public const string AppListenAddressSetting = DaprTransportOptions.SectionName + ":AppListenAddress";
    public const string EndpointHostsSetting = DaprTransportOptions.SectionName + ":EndpointHosts";

    private static readonly string[] s_loopbackHosts = ["localhost", "127.0.0.1", "::1"];

    private DaprAppChannel(IPAddress listenAddress, int port, IReadOnlyList<string> endpointHosts)
    {
        ListenAddress = listenAddress;
        Port = port;
        EndpointHosts = endpointHosts;
    }

    public IPAddress ListenAddress { get; }

    public int Port { get; }

    /// <summary>
    /// The hosts a worker may advertise for an instance: exact names or addresses, <c>*.suffix</c> for a DNS zone (a
    /// Kubernetes cluster domain, an Azure region's apps) or an address range (a load balancer subnet). Loopback only
    /// unless configured.
    /// </summary>
    public IReadOnlyList<string> EndpointHosts { get; }

    public string Url => $"http://{(ListenAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{ListenAddress}]" : ListenAddress.ToString())}:{Port}";

    /// <summary>Reads and checks the settings at start-up; a wrong one stops the silo with a message saying how to fix it.</summary>
    public static DaprAppChannel From(IConfiguration configuration)
    {
        var port = configuration[AppPortSetting];
        if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var appPort) || appPort is < 1 or > 65535)
        {
            throw new StartupFailedException(
                $"{AppPortSetting} is '{port}': with Provisioning:Transport=Dapr, set it to the port the sidecar calls this app on " +
                "(daprd's --app-port, the dapr.io/app-port annotation). The Dapr routes answer only there, never on the public API's port.");
        }

        var address = configuration[AppListenAddressSetting];
        IPAddress? listen = IPAddress.Loopback;
        if (!string.IsNullOrWhiteSpace(address) && !IPAddress.TryParse(address, out listen))
        {
            throw new StartupFailedException($"{AppListenAddressSetting} is '{address}', not an IP address; leave it unset to listen on loopback, where the sidecar reaches its app.");
        }

        var hosts = configuration.GetSection(EndpointHostsSetting).Get<string[]>() ?? [];
        foreach (var host in hosts)
        {
            var name = host.StartsWith("*.", StringComparison.Ordinal) ? host[2..] : host;
            if (host.Contains('/', StringComparison.Ordinal) ? !IPNetwork.TryParse(host, out _) : Uri.CheckHostName(name) == UriHostNameType.Unknown)
            {
                throw new StartupFailedException($"{EndpointHostsSetting} has '{host}': use a host name, an IP address, *.zone or an address range (10.0.0.0/8).");
            }
        }

        return new DaprAppChannel(listen!, appPort, [.. s_loopbackHosts, .. hosts]);
    }

    /// <summary>Adds the channel's listener beside the public ones (<c>--urls</c>, ASPNETCORE_URLS, or Kestrel's default).</summary>
    public void Listen(WebApplicationBuilder builder)
    {
        var urls = builder.Configuration[WebHostDefaults.ServerUrlsKey];
        var publicUrls = string.IsNullOrWhiteSpace(urls) ? ["http://localhost:5000"] : urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        builder.WebHost.UseUrls([.. publicUrls, Url]);
    }

    /// <summary>The route answers only on the channel's port (the local port of the connection, not a Host header) and with the token.</summary>
    public TBuilder OnlyHere<TBuilder>(TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        builder.AddEndpointFilter((context, next) =>
            context.HttpContext.Connection.LocalPort == Port ? next(context) : ValueTask.FromResult<object?>(Results.NotFound()));
        // The sidecar's redeliveries are paced by its resiliency policy, not by the API's per-address limits.
        return builder.AllowAnonymous().RequireDaprAppToken().DisableRateLimiting();
    }

    /// <summary>
    /// An authentic event as far as the control plane believes it: an endpoint on a host no backend may advertise is left
    /// out (the instance keeps the one it had, and the SLA probe never sends its password there), even from a worker
    /// holding the key. (Its time was checked when it was read: <see cref="Provisioner.Messaging.Wire.ProvisioningWireFormat.ReadEvent"/>.)
    /// Answers what was refused, or null.
    /// </summary>
    public (ProvisioningEvent Event, string? Refused) Check(ProvisioningEvent provisioningEvent)
    {
        var observed = provisioningEvent switch
        {
            DeploymentApplied applied => applied.Observed,
            DeploymentFailed failed => failed.Observed,
            DeploymentCancelled cancelled => cancelled.Observed,
            _ => null,
        };
        if (observed is null || (Allowed(observed.Endpoint) && Allowed(observed.ProbeEndpoint)))
        {
            return (provisioningEvent, null);
        }

        var stripped = observed with { Endpoint = null, ProbeEndpoint = null };
        var refused = $"its endpoint {observed.Endpoint} (probe {observed.ProbeEndpoint?.ToString() ?? "none"}) is not on a host a backend may advertise ({EndpointHostsSetting}); left out";
        return (provisioningEvent switch
        {
            DeploymentApplied applied => applied with { Observed = stripped },
            DeploymentFailed failed => failed with { Observed = stripped },
            DeploymentCancelled cancelled => cancelled with { Observed = stripped },
            _ => provisioningEvent,
        }, refused);
    }

    private bool Allowed(Provisioner.Deployments.Endpoint? endpoint) =>
        endpoint is null || EndpointHosts.Any(pattern => Matches(pattern, endpoint.Host));

    private static bool Matches(string pattern, string host)
    {
        if (pattern.StartsWith("*.", StringComparison.Ordinal))
        {
            return host.EndsWith(pattern[1..], StringComparison.OrdinalIgnoreCase) && host.Length > pattern.Length - 1;
        }

        return pattern.Contains('/', StringComparison.Ordinal)
            ? IPNetwork.TryParse(pattern, out var range) && IPAddress.TryParse(host, out var address) && range.Contains(address)
            : string.Equals(host, pattern, StringComparison.OrdinalIgnoreCase);
    }
}
