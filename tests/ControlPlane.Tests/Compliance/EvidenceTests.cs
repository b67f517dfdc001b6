using System.Net;
using ControlPlane.Auditing;
using ControlPlane.Identity;
using ControlPlane.Security;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace ControlPlane.Tests.Compliance;

public sealed class EvidenceTests : IDisposable
{
    private readonly ControlPlaneFactory _factory = new();

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task The_evidence_bundle_shows_the_chain_roles_keys_and_sso_without_a_secret_and_its_export_is_audited()
    {
        var admin = _factory.CreateAdminApi();
        var tenantId = (string)(await admin.CreateTenantAsync("Audited Ltd"))["id"]!;
        using (var invite = await admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/members", new { email = "owner@audited.example", role = "owner" }))
        {
            await ControlPlaneApi.ExpectAsync(invite, HttpStatusCode.Created);
        }

        using var createKey = await admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/api-keys", new { name = "ci", role = "member" });
        var key = await ControlPlaneApi.ExpectAsync(createKey, HttpStatusCode.Created);
        await _factory.Services.GetRequiredService<SsoSettingsStore>().SaveAsync(tenantId, new SsoSettingsChange(
            "https://login.audited.example/", "controlplane", "sso-client-secret-value", ["audited.example"], Roles.Find(Roles.Viewer)!, Enabled: true));

        using var response = await admin.Http.GetAsync("/api/v1/compliance/evidence");
        var text = await response.Content.ReadAsStringAsync();
        var bundle = await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.OK);
        Assert.StartsWith("attachment;", response.Content.Headers.ContentDisposition?.ToString() ?? response.Headers.GetValues("Content-Disposition").Single(), StringComparison.Ordinal);
        Assert.True((bool)bundle["auditChain"]!["intact"]!, text);
        Assert.Contains(bundle["roleAssignments"]!.AsArray(), a => (string?)a!["email"] == "owner@audited.example" && (string?)a["role"] == "owner" && (string?)a["tenantId"] == tenantId);
        Assert.Contains(bundle["apiKeys"]!.AsArray(), k => (string?)k!["id"] == (string?)key["key"]!["id"] && (string?)k["role"] == "member");
        Assert.Contains(bundle["sso"]!.AsArray(), s => (string?)s!["tenantId"] == tenantId && (string?)s["issuer"] == "https://login.audited.example/");
        Assert.Contains(bundle["activity"]!.AsArray(), a => (string?)a!["action"] == "member.add" && (int)a["count"]! >= 1);
        Assert.NotEmpty(bundle["configuration"]!.AsArray());
        Assert.DoesNotContain((string)key["secret"]!, text, StringComparison.Ordinal);
        Assert.DoesNotContain("sso-client-secret-value", text, StringComparison.Ordinal);
        var records = await _factory.Services.GetRequiredService<AuditQueries>().PageAsync(new AuditFilter { Action = "compliance.evidence.export" }, new ControlPlane.Api.PageRequest());
        Assert.Equal("succeeded", Assert.Single(records.Items).Outcome);

        var owner = await _factory.CreateTenantApiAsync(tenantId, Roles.Owner);
        using var refused = await owner.Http.GetAsync("/api/v1/compliance/evidence");
        await ControlPlaneApi.ExpectProblemAsync(refused, HttpStatusCode.Forbidden, "forbidden");
        using var badPeriod = await admin.Http.GetAsync("/api/v1/compliance/evidence?from=2026-12-01T00:00:00Z&to=2025-01-01T00:00:00Z");
        await ControlPlaneApi.ExpectProblemAsync(badPeriod, HttpStatusCode.BadRequest);
    }
}
