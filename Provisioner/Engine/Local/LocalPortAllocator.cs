using System.Net;
using System.Net.Sockets;
using System.Runtime.Versioning;
using Microsoft.Extensions.Options;
using Provisioner.Deployments;

namespace Provisioner.Local;

/// <summary>
/// Hands out ports from the configured range. A port belongs to its instance from creation to deletion,
/// so stop/start keeps the endpoint customers have configured. The ports of every instance directory
/// count as taken, so a restarted control plane never hands out a port that an instance still owns.
/// </summary>
[SupportedOSPlatform("linux")]
internal sealed class LocalPortAllocator(IOptions<LocalBackendOptions> options)
{
    // One allocation at a time: the chosen port is written to the instance's record before the next
    // allocation reads the records, which is what makes concurrent creates get distinct ports.
    private readonly Lock _allocation = new();

    /// <summary>
    /// Chooses a port for <paramref name="paths"/> and writes it with <paramref name="record"/> while holding
    /// the allocation lock. <paramref name="avoid"/> is a port known to be taken (by a foreign process).
    /// </summary>
    public LocalInstanceRecord Reserve(
        string instanceId, LocalInstancePaths paths, Func<int, LocalInstanceRecord> recordFor, int? avoid)
    {
        lock (_allocation)
        {
            var settings = options.Value;
            var reserved = LocalInstancePaths.ReadAllRecords(settings.InstancesDirectory)
                .Where(other => other.InstanceId != instanceId)
                .Select(other => other.Port)
                .ToHashSet();
            var address = IPAddress.Parse(settings.BindAddress);
            for (var port = settings.FirstPort; port <= settings.LastPort; port++)
            {
                if (port != avoid && !reserved.Contains(port) && IsFree(address, port))
                {
                    var reservation = recordFor(port);
                    paths.WriteRecord(reservation);
                    return reservation;
                }
            }

            throw new DeploymentFailedException(
                "no-free-port",
                $"No free port for instance {instanceId} in {settings.FirstPort}–{settings.LastPort}: " +
                $"{reserved.Count} are reserved by instances and the rest are in use by other programs. " +
                $"Widen {LocalBackendOptions.SectionName}:FirstPort/LastPort or delete instances that are no longer needed.");
        }
    }

    /// <summary>
    /// Whether a server could listen on the port now. SO_REUSEADDR as servers set it: connections of an
    /// instance that just stopped (TIME_WAIT) do not count, a listening socket does.
    /// </summary>
    public static bool IsFree(IPAddress address, int port)
    {
        using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        try
        {
            socket.Bind(new IPEndPoint(address, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
