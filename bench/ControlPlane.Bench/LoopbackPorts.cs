using System.Net;
using System.Net.Sockets;

namespace ControlPlane.Bench;

internal static class LoopbackPorts
{
    // Below the kernel's ephemeral range (32768+), so a client socket (our own PINGs) cannot take a port between
    // choosing it and the server binding it; and apart from the Local backend's default range (21000-21999).
    private const int FirstInstancePort = 23000;
    private const int LastInstancePort = 23999;

    private static readonly Lock s_allocation = new();
    private static int s_next = FirstInstancePort;

    /// <summary>A port on 127.0.0.1 that is free now, for a server that binds it at once (the control plane's API).</summary>
    public static int Ephemeral()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>
    /// The next free port of the benchmark's own range for a bare Garnet, which binds it only once it has
    /// started; ports are handed out in turn, so instances started together never get the same one.
    /// </summary>
    public static int ForInstance()
    {
        lock (s_allocation)
        {
            for (var attempt = 0; attempt <= LastInstancePort - FirstInstancePort; attempt++)
            {
                var port = s_next;
                s_next = port == LastInstancePort ? FirstInstancePort : port + 1;
                if (IsFree(port))
                {
                    return port;
                }
            }
        }

        throw new BenchmarkFailedException($"No free port in {FirstInstancePort}-{LastInstancePort} for a bare Garnet.");
    }

    /// <summary>Whether a server could listen on the port now; SO_REUSEADDR as servers set it, so TIME_WAIT does not count.</summary>
    private static bool IsFree(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
