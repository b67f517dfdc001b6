using System.Net;
using System.Net.Sockets;

namespace ControlPlane.Tests.Support;

public static class Ports
{
    /// <summary>A free TCP port on 127.0.0.1 (free when asked; tests never assume a fixed port).</summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    // Instance ports come from 12000–20999: below the kernel's ephemeral range (32768+, where client sockets
    // could take a reserved port before Garnet binds it), away from the product's default 21000–21999 and
    // from Provisioner.Tests' 22000–31999, which may run at the same time.
    private const int FirstInstancePort = 12000;
    private const int InstanceBlocks = 45;
    private const int InstanceBlockSize = 200;
    private static int s_nextBlock = Random.Shared.Next(InstanceBlocks);

    /// <summary>A block of 200 ports for one control plane's instances; no two hosts of a test run share one.</summary>
    public static (int First, int Last) InstanceRange()
    {
        var block = Interlocked.Increment(ref s_nextBlock) % InstanceBlocks;
        var first = FirstInstancePort + (block * InstanceBlockSize);
        return (first, first + InstanceBlockSize - 1);
    }

    public static bool IsBindable(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
