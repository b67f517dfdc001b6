using ControlPlane.Persistence;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ControlPlane.Hosting;

/// <summary>Ready when the control-plane database (SQLite file, or PostgreSQL in cluster mode) answers a query.</summary>
public sealed class DatabaseHealthCheck(Database database) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await using var connection = await database.OpenAsync(cancellationToken);
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT 1;";
            await command.ExecuteScalarAsync(cancellationToken);
            return HealthCheckResult.Healthy();
        }
        catch (Exception exception)
        {
            return HealthCheckResult.Unhealthy("The control-plane database does not answer.", exception);
        }
    }
}

/// <summary>Ready when the Orleans silo serves grain calls.</summary>
public sealed class SiloHealthCheck(IGrainFactory grains) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await grains.GetGrain<Tenants.ITenantDirectoryGrain>(0).ListTenantIdsAsync().WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
            return HealthCheckResult.Healthy();
        }
        catch (Exception exception)
        {
            return HealthCheckResult.Unhealthy("The Orleans silo does not answer.", exception);
        }
    }
}
