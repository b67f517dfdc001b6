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

    /// <summary>A random block of 200 ports for one control plane's instances, so parallel tests rarely contend.</summary>
    public static (int First, int Last) InstanceRange()
    {
        var first = Random.Shared.Next(300, 590) * 100;
        return (first, first + 199);
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
