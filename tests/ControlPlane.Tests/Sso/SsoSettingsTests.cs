using System.Net;
using System.Text;
using ControlPlane.Persistence;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace ControlPlane.Tests.Sso;

[Collection(SsoCollection.Name)]
public sealed class SsoSettingsTests(SsoWorld world)
{
    [Fact]
    public async Task Every_bad_field_is_named_in_one_problem()
    {
        var (tenantId, _) = await world.NewTenantAsync();

        using var response = await world.PutSettingsAsync(tenantId, new
        {
            issuer = "http://login.example.com/",
            clientId = "",
            allowedEmailDomains = new[] { "example.com", "not a domain", "@example.org" },
            defaultRole = "owner",
        });

        var problem = await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "validation-failed");
        var errors = problem["errors"]!.AsObject();
        Assert.Equal(["allowedEmailDomains", "clientId", "clientSecret", "defaultRole", "enabled", "issuer"], errors.Select(e => e.Key).Order().ToList());
        Assert.Contains("loopback", (string?)errors["issuer"]![0], StringComparison.Ordinal);
        Assert.Contains("'not a domain'", (string?)errors["allowedEmailDomains"]![0], StringComparison.Ordinal);
        Assert.Contains("'@example.org'", (string?)errors["allowedEmailDomains"]![0], StringComparison.Ordinal);
        await ExpectNotConfiguredAsync(tenantId);
    }

    [Fact]
    public async Task An_empty_domain_list_is_refused()
    {
        var (tenantId, _) = await world.NewTenantAsync();

        using var response = await world.PutSettingsAsync(
            tenantId, new { issuer = world.Provider.Issuer, clientId = "c", clientSecret = "s", allowedEmailDomains = Array.Empty<string>(), defaultRole = "viewer", enabled = true });

        var problem = await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "validation-failed");
        Assert.Equal(["allowedEmailDomains"], problem["errors"]!.AsObject().Select(e => e.Key).ToList());
    }

    [Fact]
    public async Task An_issuer_that_cannot_be_reached_or_names_another_issuer_is_refused_and_nothing_is_stored()
    {
        var (tenantId, domain) = await world.NewTenantAsync();
        var nobody = $"http://127.0.0.1:{Ports.Free()}/";
        var sameServerOtherName = world.Provider.Issuer.Replace("127.0.0.1", "localhost", StringComparison.Ordinal);

        using var unreachable = await world.PutSettingsAsync(tenantId, world.Settings(domain, issuer: nobody));
        using var mismatch = await world.PutSettingsAsync(tenantId, world.Settings(domain, issuer: sameServerOtherName));

        var unreachableProblem = await ControlPlaneApi.ExpectProblemAsync(unreachable, HttpStatusCode.UnprocessableEntity, "sso-issuer-unreachable");
        Assert.Contains($"{nobody}.well-known/openid-configuration", (string?)unreachableProblem["detail"], StringComparison.Ordinal);
        var mismatchProblem = await ControlPlaneApi.ExpectProblemAsync(mismatch, HttpStatusCode.UnprocessableEntity, "sso-issuer-mismatch");
        Assert.Contains(world.Provider.Issuer, (string?)mismatchProblem["detail"], StringComparison.Ordinal);
        await ExpectNotConfiguredAsync(tenantId);
        var refusals = (await world.AuditAsync(tenantId, "sso.settings.put")).Select(record => record.Outcome).Order().ToList();
        Assert.Equal(["rejected:sso-issuer-mismatch", "rejected:sso-issuer-unreachable"], refusals);
    }

    [Fact]
    public async Task The_client_secret_is_write_only_and_encrypted_at_rest()
    {
        var (tenantId, domain) = await world.NewTenantAsync();
        var secret = $"never-shown-{Guid.NewGuid():N}";

        using var put = await world.PutSettingsAsync(tenantId, world.Settings(domain, clientSecret: secret));
        var answered = await ControlPlaneApi.ExpectAsync(put, HttpStatusCode.OK);
        var read = await world.Admin.GetAsync($"/api/v1/tenants/{tenantId}/sso");

        foreach (var view in new[] { answered, read })
        {
            Assert.True((bool)view["clientSecretSet"]!);
            Assert.Null(view["clientSecret"]);
            Assert.DoesNotContain(secret, view.ToJsonString(), StringComparison.Ordinal);
            Assert.Equal("https://localhost/portal/sso/callback", (string?)view["redirectUri"]);
            Assert.Equal([domain], view["allowedEmailDomains"]!.AsArray().Select(d => (string?)d).ToList());
        }

        var database = world.ControlPlane.Services.GetRequiredService<Database>();
        var stored = Assert.Single(await database.QueryAsync(
            "SELECT client_secret FROM sso_settings WHERE tenant_id = @tenant;", reader => reader.GetString(0), CancellationToken.None, ("tenant", tenantId)));
        Assert.NotEqual(secret, stored);
        Assert.DoesNotContain(secret, stored, StringComparison.Ordinal);
        // Nor anywhere in the database's files (the SQLite file and its write-ahead log), the audit log or a log line.
        foreach (var file in Directory.GetFiles(world.ControlPlane.DataDirectory.Path, "controlplane.db*"))
        {
            Assert.DoesNotContain(secret, Encoding.UTF8.GetString(await ReadSharedAsync(file)), StringComparison.Ordinal);
        }

        var audit = Assert.Single(await world.AuditAsync(tenantId, "sso.settings.put"));
        Assert.Equal("succeeded", audit.Outcome);
        Assert.DoesNotContain(secret, audit.Details, StringComparison.Ordinal);
        Assert.DoesNotContain(world.ControlPlane.Logs.Lines, line => line.Contains(secret, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_put_without_a_secret_keeps_the_stored_one_and_sign_in_still_works()
    {
        var (tenantId, domain) = await world.TenantWithSsoAsync();
        using (var put = await world.PutSettingsAsync(tenantId, world.Settings(domain, defaultRole: "member", clientSecret: null)))
        {
            Assert.Equal("member", (string?)(await ControlPlaneApi.ExpectAsync(put, HttpStatusCode.OK))["defaultRole"]);
        }

        world.Provider.Email = $"rosa@{domain}";
        using var browser = world.NewBrowser();
        var landing = await browser.FollowAsync($"/portal/sso/start?email=rosa@{domain}");

        Assert.Equal($"/portal/tenants/{tenantId}", landing.PathAndQuery);
    }

    [Fact]
    public async Task A_domain_belongs_to_one_tenant_at_most()
    {
        var (first, domain) = await world.TenantWithSsoAsync();
        var (second, _) = await world.NewTenantAsync();

        using var response = await world.PutSettingsAsync(second, world.Settings(domain.ToUpperInvariant()));

        var problem = await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.Conflict, "sso-domain-claimed");
        Assert.Equal(domain, (string?)problem["domain"]);
        await ExpectNotConfiguredAsync(second);
        var firstSettings = await world.Admin.GetAsync($"/api/v1/tenants/{first}/sso");
        Assert.Equal([domain], firstSettings["allowedEmailDomains"]!.AsArray().Select(d => (string?)d).ToList());

        // Once the first tenant lets it go, the second may claim it.
        using (var deleted = await world.Admin.SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{first}/sso"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        using var retried = await world.PutSettingsAsync(second, world.Settings(domain));
        await ControlPlaneApi.ExpectAsync(retried, HttpStatusCode.OK);
    }

    [Fact]
    public async Task An_admin_reads_the_settings_but_only_an_owner_changes_them()
    {
        var (tenantId, domain) = await world.TenantWithSsoAsync();
        using var created = await world.Admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/api-keys", new { name = "tenant admin", role = "admin" });
        var adminKey = (string)(await ControlPlaneApi.ExpectAsync(created, HttpStatusCode.Created))["secret"]!;
        var admin = ControlPlaneApi.WithKey(world.ControlPlane.CreateClient(), adminKey);

        var read = await admin.GetAsync($"/api/v1/tenants/{tenantId}/sso");
        using var put = await admin.SendAsync(HttpMethod.Put, $"/api/v1/tenants/{tenantId}/sso", world.Settings(domain, enabled: false));
        using var delete = await admin.SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{tenantId}/sso");

        Assert.True((bool)read["enabled"]!);
        await ControlPlaneApi.ExpectProblemAsync(put, HttpStatusCode.Forbidden, "forbidden");
        await ControlPlaneApi.ExpectProblemAsync(delete, HttpStatusCode.Forbidden, "forbidden");
        Assert.True((bool)(await world.Admin.GetAsync($"/api/v1/tenants/{tenantId}/sso"))["enabled"]!);
    }

    private async Task ExpectNotConfiguredAsync(string tenantId)
    {
        using var response = await world.Admin.SendAsync(HttpMethod.Get, $"/api/v1/tenants/{tenantId}/sso");
        await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.NotFound, "sso-not-configured");
    }

    private static async Task<byte[]> ReadSharedAsync(string path)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        return copy.ToArray();
    }
}
