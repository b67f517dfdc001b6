using Provisioner.Deployments;
using StackExchange.Redis;

namespace Provisioner.Cloud.Tests.Support;

/// <summary>A customer's Redis client against an instance's endpoint.</summary>
public static class Customer
{
    public static async Task WriteAsync(Endpoint endpoint, string password, string key, string value)
    {
        await using var connection = await ConnectAsync(endpoint, password);
        Assert.True(await connection.GetDatabase().StringSetAsync(key, value));
    }

    public static async Task<string?> ReadAsync(Endpoint endpoint, string password, string key)
    {
        await using var connection = await ConnectAsync(endpoint, password);
        return await connection.GetDatabase().StringGetAsync(key);
    }

    private static Task<ConnectionMultiplexer> ConnectAsync(Endpoint endpoint, string password) => ConnectionMultiplexer.ConnectAsync(new ConfigurationOptions
    {
        EndPoints = { { endpoint.Host, endpoint.Port } },
        Password = password,
        AbortOnConnectFail = true,
        ConnectTimeout = 10000,
        SyncTimeout = 10000,
    });
}
