using System.Net.Sockets;
using System.Text;

namespace ControlPlane.Bench;

/// <summary>AUTH and PING over raw RESP on one connection: the check that says an instance serves its customer.</summary>
internal static class RespPing
{
    /// <summary>True when AUTH answered +OK and PING answered +PONG; false when the server is not there (yet) or refused.</summary>
    public static async Task<bool> AnswersAsync(int port, string password, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        try
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync("127.0.0.1", port, timeoutSource.Token);
            var passwordBytes = Encoding.UTF8.GetBytes(password);
            var request = new List<byte>();
            request.AddRange(Encoding.ASCII.GetBytes($"*2\r\n$4\r\nAUTH\r\n${passwordBytes.Length}\r\n"));
            request.AddRange(passwordBytes);
            request.AddRange("\r\n*1\r\n$4\r\nPING\r\n"u8.ToArray());
            await socket.SendAsync(request.ToArray(), SocketFlags.None, timeoutSource.Token);

            var reply = new StringBuilder();
            var buffer = new byte[256];
            while (CountLines(reply) < 2)
            {
                var read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeoutSource.Token);
                if (read == 0)
                {
                    return false;
                }

                reply.Append(Encoding.UTF8.GetString(buffer, 0, read));
            }

            return reply.ToString().StartsWith("+OK\r\n+PONG\r\n", StringComparison.Ordinal);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int CountLines(StringBuilder text)
    {
        var count = 0;
        for (var i = 0; i + 1 < text.Length; i++)
        {
            if (text[i] == '\r' && text[i + 1] == '\n')
            {
                count++;
            }
        }

        return count;
    }
}
