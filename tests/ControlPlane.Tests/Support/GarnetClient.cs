using System.Text.Json.Nodes;
using StackExchange.Redis;

namespace ControlPlane.Tests.Support;

/// <summary>Connects to a hosted instance with a real Redis client, as a customer would.</summary>
public static class GarnetClient
{
    public static Task<ConnectionMultiplexer> ConnectAsync(JsonNode credentials, string? password = null) =>
        ConnectionMultiplexer.ConnectAsync(new ConfigurationOptions
        {
            EndPoints = { { (string)credentials["host"]!, (int)credentials["port"]! } },
            Password = password ?? (string)credentials["password"]!,
            AbortOnConnectFail = true,
            ConnectTimeout = 5000,
            SyncTimeout = 5000,
            ConnectRetry = 1,
        });

    /// <summary>Retries a SET/GET round trip until the instance serves it (e.g. after a restart of its process).</summary>
    public static async Task<string?> GetWhenServingAsync(JsonNode credentials, string key, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                await using var connection = await ConnectAsync(credentials);
                return await connection.GetDatabase().StringGetAsync(key);
            }
            catch (RedisException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }
}
