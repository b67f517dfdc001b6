using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Billing.Tests.Support;

/// <summary>
/// A customer's connection to an instance speaking raw RESP, so a test knows exactly which commands reached the server
/// (a full client library adds its own on connect, e.g. a tie-breaker GET).
/// </summary>
public sealed class RespConnection : IAsyncDisposable
{
    private readonly TcpClient _client;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;

    private RespConnection(TcpClient client)
    {
        _client = client;
        _stream = client.GetStream();
        _reader = new StreamReader(_stream, Encoding.UTF8);
    }

    /// <summary>Signs in as <paramref name="username"/>: the customer's <c>default</c> user, or the platform's own, which alone may read INFO.</summary>
    public static async Task<RespConnection> OpenAsync(string host, int port, string password, string username = "default")
    {
        var client = new TcpClient();
        await client.ConnectAsync(host, port);
        var connection = new RespConnection(client);
        Assert.Equal("OK", await connection.SendAsync("AUTH", username, password));
        return connection;
    }

    /// <summary>Sends one command and answers its reply: a simple string, an integer or a bulk string (null for nil).</summary>
    public async Task<string?> SendAsync(params string[] parts)
    {
        var command = new StringBuilder($"*{parts.Length}\r\n");
        foreach (var part in parts)
        {
            command.Append(CultureInfo.InvariantCulture, $"${Encoding.UTF8.GetByteCount(part)}\r\n{part}\r\n");
        }

        await _stream.WriteAsync(Encoding.UTF8.GetBytes(command.ToString()));
        var line = await _reader.ReadLineAsync() ?? throw new IOException("The server closed the connection.");
        switch (line[0])
        {
            case '+' or ':':
                return line[1..];
            case '-':
                throw new InvalidOperationException($"The server answered an error: {line}");
            case '$' when line == "$-1":
                return null;
            case '$':
                var length = int.Parse(line.AsSpan(1), CultureInfo.InvariantCulture);
                var buffer = new char[length];
                var read = 0;
                while (read < length)
                {
                    read += await _reader.ReadAsync(buffer.AsMemory(read, length - read));
                }

                await _reader.ReadLineAsync();
                return new string(buffer);
            default:
                throw new InvalidOperationException($"Unexpected reply: {line}");
        }
    }

    /// <summary>
    /// Garnet's read + write command counter, which it samples once a second: waits until it reaches
    /// <paramref name="expected"/>. Needs a connection of the platform's user: the customer's may not run INFO.
    /// </summary>
    public async Task WaitForOperationsAsync(long expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var info = await SendAsync("INFO", "stats") ?? "";
            var counted = Counter(info, "total_read_commands_processed") + Counter(info, "total_write_commands_processed");
            if (counted >= expected)
            {
                Assert.Equal(expected, counted);
                return;
            }

            Assert.True(DateTime.UtcNow < deadline, $"The instance counted {counted} operations, not {expected}.");
            await Task.Delay(200);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _reader.Dispose();
        await _stream.DisposeAsync();
        _client.Dispose();
    }

    private static long Counter(string info, string name) =>
        info.Split('\n', StringSplitOptions.TrimEntries)
            .Where(line => line.StartsWith(name + ":", StringComparison.Ordinal))
            .Select(line => long.Parse(line[(name.Length + 1)..], CultureInfo.InvariantCulture))
            .Single();
}
