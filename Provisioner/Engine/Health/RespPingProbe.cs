using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Provisioner.Health;

/// <summary>How an instance answered an authenticated PING.</summary>
/// <param name="Answered">True when AUTH succeeded and PING returned PONG.</param>
/// <param name="Detail">A sentence for a person; never contains the password.</param>
/// <param name="Info">The reply to <c>INFO</c> when it was asked for and the PING was answered; otherwise null.</param>
public sealed record PingResult(bool Answered, TimeSpan Latency, string Detail, string? Info = null);

/// <summary>
/// Sends <c>AUTH password</c> and <c>PING</c> over raw RESP on one TCP connection. A dozen lines of
/// protocol instead of a full Redis client keep the worker free of a multiplexer, its background
/// threads and reconnect logic, none of which a one-shot liveness check needs; and it answers fast
/// enough to poll every 20 ms while an instance starts.
/// </summary>
public static class RespPingProbe
{
    private const int MaxReplyBytes = 64 * 1024;

    public static Task<PingResult> PingAsync(
        string host, int port, string password, TimeSpan timeout, CancellationToken cancellationToken) =>
        PingAsync(host, port, username: null, password, timeout, infoSections: null, cancellationToken);

    /// <summary>The PING as <paramref name="username"/> (null: the default user), e.g. the platform's own user.</summary>
    public static Task<PingResult> PingAsync(
        string host, int port, string? username, string password, TimeSpan timeout, CancellationToken cancellationToken) =>
        PingAsync(host, port, username, password, timeout, infoSections: null, cancellationToken);

    /// <summary>
    /// Authenticates as <paramref name="username"/> and sends <paramref name="command"/>; answers its reply's first line
    /// (<c>+OK</c>, <c>-NOPERM …</c>). Throws <see cref="IOException"/> when AUTH is refused or the connection fails.
    /// </summary>
    public static async Task<string> RunAsync(
        string host, int port, string username, string password, IReadOnlyList<string> command, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(host, port, timeoutSource.Token);
        await socket.SendAsync(EncodeCommand(["AUTH", username, password]), SocketFlags.None, timeoutSource.Token);
        var received = new List<byte>(64);
        var auth = await ReadLineAsync(socket, received, timeoutSource.Token);
        if (auth != "+OK")
        {
            throw new IOException($"AUTH as {username} was refused ({Describe(auth)}).");
        }

        await socket.SendAsync(EncodeCommand(command), SocketFlags.None, timeoutSource.Token);
        return await ReadLineAsync(socket, received, timeoutSource.Token);
    }

    /// <summary>
    /// The same PING, followed on the same connection by <c>INFO</c> with <paramref name="infoSections"/> (e.g.
    /// <c>["server", "stats"]</c>) when given, so a caller that needs the server's counters as well opens one connection, not two.
    /// The latency is that of AUTH and PING only.
    /// </summary>
    public static async Task<PingResult> PingAsync(
        string host, int port, string? username, string password, TimeSpan timeout, IReadOnlyList<string>? infoSections, CancellationToken cancellationToken)
    {
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(host, port, timeoutSource.Token);
            await socket.SendAsync(EncodeAuthAndPing(username, password), SocketFlags.None, timeoutSource.Token);

            var received = new List<byte>(64);
            var auth = await ReadLineAsync(socket, received, timeoutSource.Token);
            var pong = await ReadLineAsync(socket, received, timeoutSource.Token);
            var latency = Stopwatch.GetElapsedTime(started);
            if (auth != "+OK")
            {
                return new PingResult(false, latency, $"AUTH was refused ({Describe(auth)}).");
            }

            if (pong != "+PONG")
            {
                return new PingResult(false, latency, $"PING returned {Describe(pong)} instead of PONG.");
            }

            var answered = new PingResult(true, latency, $"Answered an authenticated PING in {latency.TotalMilliseconds:0.0} ms.");
            if (infoSections is null)
            {
                return answered;
            }

            try
            {
                await socket.SendAsync(EncodeCommand(["INFO", .. infoSections]), SocketFlags.None, timeoutSource.Token);
                return answered with { Info = await ReadBulkStringAsync(socket, received, timeoutSource.Token) };
            }
            catch (Exception exception) when (exception is IOException or SocketException
                || (exception is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                // The PING was answered: the instance serves, whatever became of the counters.
                return answered with { Detail = $"{answered.Detail} INFO failed: {exception.Message}" };
            }
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

    private static byte[] EncodeAuthAndPing(string? username, string password)
    {
        // Bulk strings are length-prefixed, so any character in the password is sent as is.
        var buffer = new ArrayBufferWriter<byte>(256);
        buffer.Write(EncodeCommand(username is null ? ["AUTH", password] : ["AUTH", username, password]));
        buffer.Write("*1\r\n$4\r\nPING\r\n"u8);
        return buffer.WrittenSpan.ToArray();
    }

    private static byte[] EncodeCommand(IReadOnlyList<string> parts)
    {
        var command = new StringBuilder($"*{parts.Count}\r\n");
        foreach (var part in parts)
        {
            command.Append(CultureInfo.InvariantCulture, $"${Encoding.UTF8.GetByteCount(part)}\r\n{part}\r\n");
        }

        return Encoding.UTF8.GetBytes(command.ToString());
    }

    private static async Task<string> ReadLineAsync(Socket socket, List<byte> received, CancellationToken cancellationToken)
    {
        int end;
        while ((end = IndexOfLineEnd(received)) < 0)
        {
            await ReceiveAsync(socket, received, cancellationToken);
        }

        var line = Encoding.UTF8.GetString([.. received.GetRange(0, end)]);
        received.RemoveRange(0, end + 2);
        return line;
    }

    /// <summary>A RESP bulk string (<c>$length</c>, the bytes, CRLF); an error reply becomes an exception.</summary>
    private static async Task<string> ReadBulkStringAsync(Socket socket, List<byte> received, CancellationToken cancellationToken)
    {
        var header = await ReadLineAsync(socket, received, cancellationToken);
        if (!header.StartsWith('$') || !int.TryParse(header.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out var length) || length > MaxReplyBytes)
        {
            throw new IOException($"the server answered {Describe(header)} instead of a bulk string");
        }

        while (received.Count < length + 2)
        {
            await ReceiveAsync(socket, received, cancellationToken);
        }

        var value = Encoding.UTF8.GetString([.. received.GetRange(0, length)]);
        received.RemoveRange(0, length + 2);
        return value;
    }

    private static async Task ReceiveAsync(Socket socket, List<byte> received, CancellationToken cancellationToken)
    {
        var buffer = new byte[4096];
        var read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
        if (read == 0)
        {
            throw new IOException("the server closed the connection");
        }

        received.AddRange(buffer.AsSpan(0, read));
        if (received.Count > MaxReplyBytes + 64)
        {
            throw new IOException("the server sent an unexpectedly long reply");
        }
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
