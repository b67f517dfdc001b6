using System.Buffers;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Provisioner.Health;

/// <summary>How an instance answered an authenticated PING.</summary>
/// <param name="Answered">True when AUTH succeeded and PING returned PONG.</param>
/// <param name="Detail">A sentence for a person; never contains the password.</param>
public sealed record PingResult(bool Answered, TimeSpan Latency, string Detail);

/// <summary>
/// Sends <c>AUTH password</c> and <c>PING</c> over raw RESP on one TCP connection. A dozen lines of
/// protocol instead of a full Redis client keep the worker free of a multiplexer, its background
/// threads and reconnect logic, none of which a one-shot liveness check needs; and it answers fast
/// enough to poll every 20 ms while an instance starts.
/// </summary>
public static class RespPingProbe
{
    public static async Task<PingResult> PingAsync(
        string host, int port, string password, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(host, port, timeoutSource.Token);
            await socket.SendAsync(EncodeAuthAndPing(password), SocketFlags.None, timeoutSource.Token);

            var replies = await ReadLinesAsync(socket, 2, timeoutSource.Token);
            var latency = Stopwatch.GetElapsedTime(started);
            if (replies[0] != "+OK")
            {
                return new PingResult(false, latency, $"AUTH was refused ({Describe(replies[0])}).");
            }

            return replies[1] == "+PONG"
                ? new PingResult(true, latency, $"Answered an authenticated PING in {latency.TotalMilliseconds:0.0} ms.")
                : new PingResult(false, latency, $"PING returned {Describe(replies[1])} instead of PONG.");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new PingResult(false, Stopwatch.GetElapsedTime(started), $"No answer within {timeout.TotalSeconds:0.#} s.");
        }
        catch (SocketException exception)
        {
            return new PingResult(false, Stopwatch.GetElapsedTime(started), $"Cannot connect to {host}:{port}: {exception.SocketErrorCode}.");
        }
        catch (IOException exception)
        {
            return new PingResult(false, Stopwatch.GetElapsedTime(started), $"Connection to {host}:{port} failed: {exception.Message}");
        }
    }

    private static byte[] EncodeAuthAndPing(string password)
    {
        // Bulk strings are length-prefixed, so any character in the password is sent as is.
        var passwordBytes = Encoding.UTF8.GetBytes(password);
        var buffer = new ArrayBufferWriter<byte>(passwordBytes.Length + 64);
        buffer.Write(Encoding.ASCII.GetBytes($"*2\r\n$4\r\nAUTH\r\n${passwordBytes.Length}\r\n"));
        buffer.Write(passwordBytes);
        buffer.Write("\r\n*1\r\n$4\r\nPING\r\n"u8);
        return buffer.WrittenSpan.ToArray();
    }

    private static async Task<string[]> ReadLinesAsync(Socket socket, int count, CancellationToken cancellationToken)
    {
        var received = new List<byte>(64);
        var buffer = new byte[256];
        var lines = new List<string>(count);
        while (lines.Count < count)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
            if (read == 0)
            {
                throw new IOException("the server closed the connection");
            }

            received.AddRange(buffer.AsSpan(0, read));
            int end;
            while (lines.Count < count && (end = IndexOfLineEnd(received)) >= 0)
            {
                lines.Add(Encoding.UTF8.GetString([.. received.GetRange(0, end)]));
                received.RemoveRange(0, end + 2);
            }

            if (received.Count > 4096)
            {
                throw new IOException("the server sent an unexpectedly long reply");
            }
        }

        return [.. lines];
    }

    private static int IndexOfLineEnd(List<byte> bytes)
    {
        for (var i = 0; i + 1 < bytes.Count; i++)
        {
            if (bytes[i] == '\r' && bytes[i + 1] == '\n')
            {
                return i;
            }
        }

        return -1;
    }

    private static string Describe(string reply) => reply.Length > 80 ? reply[..80] + "…" : reply;
}
