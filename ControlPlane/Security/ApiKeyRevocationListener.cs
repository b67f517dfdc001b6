using ControlPlane.Persistence;
using Npgsql;

namespace ControlPlane.Security;

/// <summary>
/// Cluster mode: listens for API-key revocations announced by any silo (PostgreSQL <c>LISTEN</c>) and forgets this
/// silo's remembered keys, so a revoked key stops working everywhere within moments, not after
/// <see cref="ApiKeyStore.CacheDuration"/>. When the connection drops, notifications may be missed: the cache is
/// forgotten again on every reconnect.
/// </summary>
public sealed partial class ApiKeyRevocationListener(
    Database database,
    ApiKeyStore keys,
    ILogger<ApiKeyRevocationListener> logger) : BackgroundService
{
    private static readonly TimeSpan s_reconnectDelay = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = (NpgsqlConnection)await database.OpenAsync(stoppingToken);
                connection.Notification += (_, _) => keys.ForgetCachedKeys();
                await using (var listen = new NpgsqlCommand($"LISTEN {ApiKeyStore.RevocationChannel};", connection))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }

                keys.ForgetCachedKeys();
                while (true)
                {
                    await connection.WaitAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception exception)
            {
                // Whatever broke the connection (the server restarted, the network, a failover), keep listening.
                keys.ForgetCachedKeys();
                LogListenerLost(exception);
                await Task.Delay(s_reconnectDelay, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Lost the API-key revocation channel; reconnecting (until then a revoked key may work here for up to 30 s)")]
    private partial void LogListenerLost(Exception exception);
}
