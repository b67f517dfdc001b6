using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Provisioner.Health;

/// <summary>How an instance answered an authenticated PING.</summary>
/// <param name="Answered">True when AUTH succeeded and PING returned PONG.</param>
/// <param name="Detail">A sentence for a person; never contains the password.</param>
/// <param name="Info">The reply to <c>INFO</c> when it was asked for and the PING was answered; otherwise null.</param>
public sealed record PingResult(bool Answered, TimeSpan Latency, string Detail, string? Info = null);

/// <summary>
/// Sends <c>AUTH password</c> and <c>PING</c> over raw RESP on one TCP connection (TLS for a TLS instance, trusting only
/// the CA that issued its certificate, so the password never goes to a server that cannot prove it is it). A dozen lines of
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
        string host, int port, string username, string password, IReadOnlyList<string> command, TimeSpan timeout, CancellationToken cancellationToken,
        string? tlsAuthorityPem = null)
    {
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(host, port, timeoutSource.Token);
        await using var connection = await OpenAsync(socket, host, tlsAuthorityPem, timeoutSource.Token);
        await connection.WriteAsync(EncodeCommand(["AUTH", username, password]), timeoutSource.Token);
        var received = new List<byte>(64);
        var auth = await ReadLineAsync(connection, received, timeoutSource.Token);
        if (auth != "+OK")
        {
            throw new IOException($"AUTH as {username} was refused ({Describe(auth)}).");
        }

        await connection.WriteAsync(EncodeCommand(command), timeoutSource.Token);
        return await ReadLineAsync(connection, received, timeoutSource.Token);
    }

    /// <summary>
    /// The same PING, followed on the same connection by <c>INFO</c> with <paramref name="infoSections"/> (e.g.
    /// <c>["server", "stats"]</c>) when given, so a caller that needs the server's counters as well opens one connection, not two.
    /// The latency is that of AUTH and PING only. With <paramref name="tlsAuthorityPem"/>, the connection is TLS and the
    /// server's certificate must chain to that CA and name <paramref name="host"/>.
    /// </summary>
    public static async Task<PingResult> PingAsync(
        string host, int port, string? username, string password, TimeSpan timeout, IReadOnlyList<string>? infoSections, CancellationToken cancellationToken,
        string? tlsAuthorityPem = null)
    {
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(host, port, timeoutSource.Token);
            await using var connection = await OpenAsync(socket, host, tlsAuthorityPem, timeoutSource.Token);
            await connection.WriteAsync(EncodeAuthAndPing(username, password), timeoutSource.Token);

            var received = new List<byte>(64);
            var auth = await ReadLineAsync(connection, received, timeoutSource.Token);
            var pong = await ReadLineAsync(connection, received, timeoutSource.Token);
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
                await connection.WriteAsync(EncodeCommand(["INFO", .. infoSections]), timeoutSource.Token);
                return answered with { Info = await ReadBulkStringAsync(connection, received, timeoutSource.Token) };
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
        catch (System.Security.Authentication.AuthenticationException exception)
        {
            return new PingResult(false, Stopwatch.GetElapsedTime(started), $"TLS with {host}:{port} failed: {exception.Message}");
        }
    }

    private static async Task<Stream> OpenAsync(Socket socket, string host, string? tlsAuthorityPem, CancellationToken cancellationToken)
    {
        var network = new NetworkStream(socket, ownsSocket: false);
        if (tlsAuthorityPem is null)
        {
            return network;
        }

        var authority = X509Certificate2.CreateFromPem(tlsAuthorityPem);
        var tls = new SslStream(network, leaveInnerStreamOpen: false);
        try
        {
            await tls.AuthenticateAsClientAsync(
                new SslClientAuthenticationOptions
                {
                    TargetHost = host,
                    CertificateChainPolicy = new X509ChainPolicy
                    {
                        TrustMode = X509ChainTrustMode.CustomRootTrust,
                        CustomTrustStore = { authority },
                        RevocationMode = X509RevocationMode.NoCheck,
                    },
                },
                cancellationToken);
            return tls;
        }
        catch
        {
            await tls.DisposeAsync();
            throw;
        }
        finally
        {
            authority.Dispose();
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

    private static async Task<string> ReadLineAsync(Stream connection, List<byte> received, CancellationToken cancellationToken)
    {
        int end;
        while ((end = IndexOfLineEnd(received)) < 0)
        {
            await ReceiveAsync(connection, received, cancellationToken);
        }

        var line = Encoding.UTF8.GetString([.. received.GetRange(0, end)]);
        received.RemoveRange(0, end + 2);
        return line;
    }

    /// <summary>A RESP bulk string (<c>$length</c>, the bytes, CRLF); an error reply becomes an exception.</summary>
    private static async Task<string> ReadBulkStringAsync(Stream connection, List<byte> received, CancellationToken cancellationToken)
    {
        var header = await ReadLineAsync(connection, received, cancellationToken);
        if (!header.StartsWith('$') || !int.TryParse(header.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out var length) || length > MaxReplyBytes)
        {
            throw new IOException($"the server answered {Describe(header)} instead of a bulk string");
        }

        while (received.Count < length + 2)
        {
            await ReceiveAsync(connection, received, cancellationToken);
        }

        var value = Encoding.UTF8.GetString([.. received.GetRange(0, length)]);
        received.RemoveRange(0, length + 2);
        return value;
    }

    private static async Task ReceiveAsync(Stream connection, List<byte> received, CancellationToken cancellationToken)
    {
        var buffer = new byte[4096];
        var read = await connection.ReadAsync(buffer, cancellationToken);
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
