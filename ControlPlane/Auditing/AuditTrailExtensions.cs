using ControlPlane.Persistence;
using ControlPlane.Security;
using Microsoft.Extensions.Options;

namespace ControlPlane.Auditing;

public static class AuditTrailExtensions
{
    /// <summary>
    /// The audit trail: its tables, the log and its readers, the verifier, the heads written outside the database, retention
    /// (section <c>Audit</c>, validated at start-up) and who may read the platform's log.
    /// </summary>
    public static IServiceCollection AddAuditTrail(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddMigrations(AuditLog.Migrations);
        services.AddOptions<AuditOptions>().Bind(configuration.GetSection(AuditOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AuditOptions>, AuditOptionsValidator>();
        services.AddSingleton<AuditLog>();
        services.AddSingleton<AuditQueries>();
        services.AddSingleton<AuditVerifier>();
        services.AddSingleton<AuditHeads>();
        services.AddHostedService(provider => provider.GetRequiredService<AuditHeads>());
        services.AddSingleton<AuditRetention>();
        services.AddHostedService(provider => provider.GetRequiredService<AuditRetention>());
        return services;
    }

    /// <summary>Records 401 and 403 answers; before authentication, so it sees the answers authentication and authorization give.</summary>
    public static IApplicationBuilder UseAuditTrail(this IApplicationBuilder app) => app.UseMiddleware<RefusalAuditMiddleware>();
}
