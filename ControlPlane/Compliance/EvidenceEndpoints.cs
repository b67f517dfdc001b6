using System.Globalization;
using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Hosting;
using ControlPlane.Identity;
using ControlPlane.Persistence;
using ControlPlane.Security;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;

namespace ControlPlane.Compliance;

public sealed record EvidencePeriod(DateTimeOffset From, DateTimeOffset To);

public sealed record RoleAssignment(string Scope, string? TenantId, string UserId, string Email, string Role);

public sealed record KeyInventoryItem(
    string Id, string Name, string Role, string? TenantId, DateTimeOffset CreatedAt, string? CreatedBy, DateTimeOffset? ExpiresAt, DateTimeOffset? LastUsedAt, DateTimeOffset? RevokedAt);

public sealed record ActivityCount(string Action, string Outcome, int Count);

/// <summary>A tenant's SSO as the evidence shows it: never the client secret.</summary>
public sealed record SsoEvidence(string TenantId, string Issuer, string ClientId, IReadOnlyList<string> AllowedEmailDomains, string DefaultRole, bool Enabled, DateTimeOffset UpdatedAt);

/// <summary>A fact about how this deployment is configured, with where it is set: what an auditor asks to see.</summary>
public sealed record ConfigurationFact(string Control, string Fact, string Setting);

/// <summary>
/// The evidence an auditor asks for, for a period: whether the audit chain verifies, who holds which role, every API
/// key (never a secret), configuration facts, and what was done (audited actions by outcome). Exported by a platform
/// admin; the export is itself audited.
/// </summary>
public sealed record EvidenceBundle(
    DateTimeOffset GeneratedAt,
    string GeneratedBy,
    EvidencePeriod Period,
    AuditVerification AuditChain,
    IReadOnlyList<RoleAssignment> RoleAssignments,
    IReadOnlyList<KeyInventoryItem> ApiKeys,
    IReadOnlyList<SsoEvidence> Sso,
    IReadOnlyList<ConfigurationFact> Configuration,
    IReadOnlyList<ActivityCount> Activity);

public static class EvidenceEndpoints
{
    public static readonly TimeSpan MaxPeriod = TimeSpan.FromDays(400);

    public static IEndpointRouteBuilder MapCompliance(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/v1/compliance/evidence", ExportAsync)
            .Requires(Permissions.ComplianceExport)
            .WithTags("Compliance")
            .WithSummary("An evidence bundle for a period (?from=&to=, ISO 8601; default the last 30 days): audit chain verification, role assignments, "
                + "API key inventory, SSO settings per tenant, configuration facts and audited activity; the export is audited")
            .Produces<EvidenceBundle>();
        return app;
    }

    private static async Task<IResult> ExportAsync(
        string? from,
        string? to,
        HttpContext context,
        AuditLog audit,
        AuditVerifier verifier,
        AuditQueries queries,
        UserDirectory users,
        ApiKeyStore keys,
        SsoSettingsStore sso,
        Database database,
        IServer server,
        IOptions<AuditOptions> auditOptions,
        IOptions<RequestRateLimitOptions> rateLimits,
        IOptions<ControlPlaneOptions> controlPlane,
        TimeProvider clock)
    {
        var now = clock.GetUtcNow();
        var period = Period(from, to, now);
        var bundle = await audit.AuditedAsync(
            context,
            tenantId: null,
            "compliance.evidence.export",
            target: null,
            async () =>
            {
                var activity = new Dictionary<(string, string), int>();
                await foreach (var record in queries.StreamAsync(new AuditFilter { Since = period.From, Until = period.To }, CancellationToken.None))
                {
                    var outcome = record.Outcome.Split(':')[0];
                    activity[(record.Action, outcome)] = activity.GetValueOrDefault((record.Action, outcome)) + 1;
                }

                return new EvidenceBundle(
                    now,
                    context.User.Actor(),
                    period,
                    await verifier.VerifyAsync(CancellationToken.None),
                    await users.RoleAssignmentsAsync(CancellationToken.None),
                    [.. (await keys.AllAsync(CancellationToken.None)).Select(k => new KeyInventoryItem(
                        k.Id, k.Name, k.Role, k.TenantId, k.CreatedAt, k.CreatedBy, k.ExpiresAt, k.LastUsedAt, k.RevokedAt))],
                    [.. (await sso.ListAsync(CancellationToken.None)).Select(s => new SsoEvidence(
                        s.TenantId, s.Issuer, s.ClientId, s.AllowedEmailDomains, s.DefaultRole, s.Enabled, s.UpdatedAt))],
                    Facts(database, server, auditOptions.Value, rateLimits.Value, controlPlane.Value),
                    [.. activity.Select(pair => new ActivityCount(pair.Key.Item1, pair.Key.Item2, pair.Value)).OrderBy(a => a.Action, StringComparer.Ordinal).ThenBy(a => a.Outcome, StringComparer.Ordinal)]);
            },
            result => new AuditOutcome(Details: $"period {period.From:O} to {period.To:O}; chain {(result.AuditChain.Intact ? "intact" : "broken")}"),
            outcome: "succeeded");
        context.Response.Headers.ContentDisposition =
            $"attachment; filename=\"evidence-{period.From.ToString("yyyyMMdd", CultureInfo.InvariantCulture)}-{period.To.ToString("yyyyMMdd", CultureInfo.InvariantCulture)}.json\"";
        return TypedResults.Ok(bundle);
    }

    private static EvidencePeriod Period(string? from, string? to, DateTimeOffset now)
    {
        var errors = new Dictionary<string, string[]>();
        var end = QueryValues.Time("to", to, errors) ?? now;
        var start = QueryValues.Time("from", from, errors) ?? end - TimeSpan.FromDays(30);
        if (errors.Count == 0 && (start >= end || end - start > MaxPeriod))
        {
            errors["from"] = [$"from must be before to, and the period at most {MaxPeriod.TotalDays:0} days."];
        }

        RequestValidationException.ThrowIfAny(errors);
        return new EvidencePeriod(start, end);
    }

    private static List<ConfigurationFact> Facts(
        Database database, IServer server, AuditOptions audit, RequestRateLimitOptions rateLimits, ControlPlaneOptions controlPlane)
    {
        var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        var tls = addresses.Count > 0 && addresses.All(address => address.StartsWith("https://", StringComparison.OrdinalIgnoreCase));
        return
        [
            new("deployment", $"Mode {controlPlane.Mode}; state in {(database.IsShared ? "PostgreSQL (shared by every silo)" : "SQLite in the data directory")}.",
                "ControlPlane:Mode, ConnectionStrings:ControlPlane"),
            new("encryption in transit", tls
                    ? "Every listener of the API and portal is HTTPS."
                    : $"The API and portal listen on {string.Join(", ", addresses.DefaultIfEmpty("(not reported)"))}: TLS is terminated in front of this process (ingress or Container Apps) or not at all.",
                "ASPNETCORE_URLS / Kestrel:Endpoints; deploy/helm ingress, deploy/bicep ingress"),
            new("encryption at rest", "API key secrets and sign-in links are stored as SHA-256 hashes; portal cookies are encrypted with ASP.NET data protection "
                    + (database.IsShared ? "(key ring in the database)" : "(key ring in the data directory, 0700)")
                    + ". Hosted-instance passwords are sealed in grain state by envelope encryption (AES-256-GCM data key per password, "
                    + "wrapped by a versioned key from " + (database.IsShared ? "the secret store" : "<dataDir>/secret-keys") + ").",
                "Hosting/ControlPlaneHostingExtensions.cs, Secrets/SecretEnvelopes.cs, Secrets:SecretStore / Secrets:KeyFile"),
            new("audit", $"Hash-chained audit log; heads written outside the database every {audit.HeadInterval}; records kept {audit.RetentionDays} days, then archived to '{audit.ArchiveDirectory}'.",
                "Audit:HeadInterval, Audit:RetentionDays, Audit:ArchiveDirectory"),
            new("authentication", $"API keys (256-bit, hashed); failed authentications limited to {rateLimits.FailedAuthenticationsPerMinute}/min per address "
                    + $"(burst {rateLimits.FailedAuthenticationsBurst}); portal sessions in an HTTP-only, Secure, SameSite=Lax cookie, idle timeout {PortalSession.IdleTimeout}, roles reread every {PortalSession.RefreshEvery}.",
                "RateLimits:*, Identity/PortalSession.cs"),
            new("rate limiting", rateLimits.Enabled
                    ? $"Per key {rateLimits.PerKeyPerSecond}/s (burst {rateLimits.PerKeyBurst}); per address {rateLimits.PerAddressPerSecond}/s (burst {rateLimits.PerAddressBurst})."
                    : "Request rate limiting is OFF.",
                "RateLimits:Enabled, RateLimits:PerKey*, RateLimits:PerAddress*"),
            new("access control", $"{Roles.All.Count} roles as permission sets over {Permissions.All.Count} permissions, enforced on every endpoint by one check; "
                    + "another tenant's resources answer 404.",
                "Security/Permissions.cs, Security/Access.cs"),
        ];
    }
}
