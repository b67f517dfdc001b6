using System.Net;
using ControlPlane.Auditing;
using ControlPlane.Identity;
using ControlPlane.Security;
using ControlPlane.Tests.Support;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace ControlPlane.Tests.Identity;

/// <summary>People in a tenant: invited at a role, changed, removed; the tenant always keeps an owner; operators by platform role.</summary>
public sealed class TeamTests : IDisposable
{
    private readonly ControlPlaneFactory _factory = new();

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task The_platform_admin_makes_the_first_owner_whose_one_time_link_signs_them_in_once()
    {
        var admin = _factory.CreateAdminApi();
        var tenantId = (string)(await admin.CreateTenantAsync("First Owner Ltd"))["id"]!;

        using var invite = await admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/members", new { email = "Ada@Example.com", role = "owner" });
        var added = await ControlPlaneApi.ExpectAsync(invite, HttpStatusCode.Created);
        Assert.Equal("ada@example.com", (string?)added["member"]!["email"]);
        Assert.Equal("owner", (string?)added["member"]!["role"]);
        var url = new Uri((string)added["signInLink"]!["url"]!);
        Assert.Equal(MemberEndpoints.SignInLinkPath, url.AbsolutePath);
        var token = System.Web.HttpUtility.ParseQueryString(url.Query)["token"]!;

        var users = _factory.Services.GetRequiredService<UserDirectory>();
        var redeemed = await users.RedeemSignInLinkAsync(token);
        Assert.Equal((string?)added["member"]!["userId"], redeemed?.Id);
        Assert.Null(await users.RedeemSignInLinkAsync(token));

        // As a principal the person holds exactly the owner's permissions in that tenant and none elsewhere.
        var principal = (await users.PrincipalAsync(redeemed!.Id, "test"))!;
        Assert.True(principal.Allows(Permissions.SsoManage, tenantId));
        Assert.False(principal.Allows(Permissions.TenantsList));
        Assert.Equal(AccessVerdict.NotFound, Access.Decide(principal, Permissions.TenantRead, "tnt-0000000000000000"));

        using var again = await admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/members", new { email = "ada@example.com", role = "viewer" });
        await ControlPlaneApi.ExpectProblemAsync(again, HttpStatusCode.Conflict, "already-a-member");
        using var invalid = await admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/members", new { email = "not an address", role = "boss" });
        var problem = await ControlPlaneApi.ExpectProblemAsync(invalid, HttpStatusCode.BadRequest);
        Assert.NotNull(problem["errors"]!["email"]);
        Assert.NotNull(problem["errors"]!["role"]);
    }

    [Fact]
    public async Task Behind_a_proxy_links_are_built_on_the_configured_public_address_not_the_requests_host()
    {
        using var factory = new ControlPlaneFactory();
        factory.Settings["Portal:PublicUrl"] = "https://cloud.example.com/";
        var admin = factory.CreateAdminApi();
        var tenantId = (string)(await admin.CreateTenantAsync("Proxied Ltd"))["id"]!;

        using var invite = await admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/members", new { email = "pia@example.com", role = "owner" });
        var url = (string)(await ControlPlaneApi.ExpectAsync(invite, HttpStatusCode.Created))["signInLink"]!["url"]!;
        Assert.StartsWith($"https://cloud.example.com{MemberEndpoints.SignInLinkPath}?token=", url, StringComparison.Ordinal);

        // The SSO redirect URI is built by the same rule; a public address that is not one is refused at start-up.
        var invalid = new ControlPlane.Portal.PortalOptionsValidator().Validate(null, new ControlPlane.Portal.PortalOptions { PublicUrl = "cloud.example.com" });
        Assert.Contains("Portal__PublicUrl=https://", Assert.Single(invalid.Failures!), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_last_owner_stays_and_an_admin_can_neither_make_nor_unmake_owners()
    {
        var admin = _factory.CreateAdminApi();
        var tenantId = (string)(await admin.CreateTenantAsync("Owners Ltd"))["id"]!;
        var ownerId = await InviteAsync(admin, tenantId, "owner@example.com", "owner");
        var tenantAdmin = await _factory.CreateTenantApiAsync(tenantId, Roles.Admin);

        using (var demoteLast = await admin.SendAsync(HttpMethod.Patch, $"/api/v1/tenants/{tenantId}/members/{ownerId}", new { role = "admin" }))
        {
            await ControlPlaneApi.ExpectProblemAsync(demoteLast, HttpStatusCode.Conflict, "last-owner");
        }

        using (var removeLast = await admin.SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{tenantId}/members/{ownerId}"))
        {
            await ControlPlaneApi.ExpectProblemAsync(removeLast, HttpStatusCode.Conflict, "last-owner");
        }

        using (var adminInvitesOwner = await tenantAdmin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/members", new { email = "eve@example.com", role = "owner" }))
        {
            await ControlPlaneApi.ExpectProblemAsync(adminInvitesOwner, HttpStatusCode.Forbidden, "role-exceeds-caller");
        }

        using (var adminRemovesOwner = await tenantAdmin.SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{tenantId}/members/{ownerId}"))
        {
            await ControlPlaneApi.ExpectProblemAsync(adminRemovesOwner, HttpStatusCode.Forbidden, "role-exceeds-caller");
        }

        // An admin runs the rest of the team: invite a member, make them a viewer, remove them.
        var memberId = await InviteAsync(tenantAdmin, tenantId, "bob@example.com", "member");
        using (var change = await tenantAdmin.SendAsync(HttpMethod.Patch, $"/api/v1/tenants/{tenantId}/members/{memberId}", new { role = "viewer" }))
        {
            Assert.Equal("viewer", (string?)(await ControlPlaneApi.ExpectAsync(change, HttpStatusCode.OK))["role"]);
        }

        using (var remove = await tenantAdmin.SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{tenantId}/members/{memberId}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, remove.StatusCode);
        }

        var members = await tenantAdmin.ListAllAsync($"/api/v1/tenants/{tenantId}/members");
        Assert.Equal(["owner@example.com"], members.Select(m => (string)m["email"]!));

        // With a second owner, the first may step down.
        var secondOwnerId = await InviteAsync(admin, tenantId, "second@example.com", "owner");
        using var stepDown = await admin.SendAsync(HttpMethod.Patch, $"/api/v1/tenants/{tenantId}/members/{ownerId}", new { role = "member" });
        Assert.Equal("member", (string?)(await ControlPlaneApi.ExpectAsync(stepDown, HttpStatusCode.OK))["role"]);
        Assert.NotEqual(ownerId, secondOwnerId);

        var audit = await _factory.Services.GetRequiredService<AuditLog>().ReadAsync(tenantId, 100);
        Assert.Contains(audit, record => record.Action == "member.role.change" && record.Outcome == "rejected:last-owner");
        Assert.Contains(audit, record => record.Action == "member.remove" && record.Outcome == "succeeded" && record.Target == memberId);
    }

    [Fact]
    public async Task An_sre_operates_every_tenant_but_reads_credentials_only_with_a_reason_the_audit_log_keeps()
    {
        var admin = _factory.CreateAdminApi();
        var tenantId = (string)(await admin.CreateTenantAsync("Support Me Ltd"))["id"]!;
        var instance = await admin.CreateRunningInstanceAsync(tenantId, "cache");
        var instanceId = (string)instance["id"]!;
        var sre = await _factory.CreatePlatformApiAsync(Roles.Sre);
        var finance = await _factory.CreatePlatformApiAsync(Roles.Finance);

        await sre.GetAsync($"/api/v1/tenants/{tenantId}/instances/{instanceId}");
        using (var noReason = await sre.Http.GetAsync($"/api/v1/tenants/{tenantId}/instances/{instanceId}/credentials"))
        {
            await ControlPlaneApi.ExpectProblemAsync(noReason, HttpStatusCode.Forbidden, "access-reason-required");
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/v1/tenants/{tenantId}/instances/{instanceId}/credentials");
        request.Headers.Add(Access.AccessReasonHeader, "INC-4242: customer reports auth failures");
        using var withReason = await sre.Http.SendAsync(request);
        await ControlPlaneApi.ExpectAsync(withReason, HttpStatusCode.OK);
        var audit = await _factory.Services.GetRequiredService<AuditLog>().ReadAsync(tenantId, 100);
        Assert.Contains(audit, record => record.Action == "instance.credentials.read" && record.Outcome == "succeeded"
            && record.Actor.StartsWith("apikey:", StringComparison.Ordinal) && record.Details!.Contains("INC-4242", StringComparison.Ordinal));

        // Finance sees money, not instances; neither platform role may create tenants.
        await finance.GetAsync($"/api/v1/tenants/{tenantId}/usage");
        using (var financeInstances = await finance.Http.GetAsync($"/api/v1/tenants/{tenantId}/instances"))
        {
            await ControlPlaneApi.ExpectProblemAsync(financeInstances, HttpStatusCode.Forbidden, "forbidden");
        }

        using var sreCreatesTenant = await sre.SendAsync(HttpMethod.Post, "/api/v1/tenants", new { name = "Nope", plan = "team" });
        await ControlPlaneApi.ExpectProblemAsync(sreCreatesTenant, HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task A_member_key_lists_only_its_own_tenant_and_who_am_i_says_what_it_may_do()
    {
        var admin = _factory.CreateAdminApi();
        var tenantId = (string)(await admin.CreateTenantAsync("Mine Ltd"))["id"]!;
        await admin.CreateTenantAsync("Not Mine Ltd");
        var member = await _factory.CreateTenantApiAsync(tenantId, Roles.Member);

        var tenants = await member.ListAllAsync("/api/v1/tenants");
        Assert.Equal([tenantId], tenants.Select(t => (string)t["id"]!));
        var me = await member.GetAsync("/api/v1/me");
        Assert.Equal("apikey", (string?)me["kind"]);
        var membership = Assert.Single(me["memberships"]!.AsArray());
        Assert.Equal("member", (string?)membership!["role"]);
        var permissions = membership["permissions"]!.AsArray().Select(p => (string)p!).ToList();
        Assert.Contains("instances:operate", permissions);
        Assert.DoesNotContain("members:manage", permissions);

        var roles = (await member.GetAsync("/api/v1/roles")).AsArray();
        Assert.Equal(Roles.All.Count, roles.Count);
    }

    [Fact]
    public void Every_api_endpoint_names_the_permission_it_requires_or_says_it_is_open_to_any_caller()
    {
        using var _ = _factory.CreateClient();
        var endpoints = _factory.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(endpoint => endpoint.RoutePattern.RawText?.StartsWith("/api/v1", StringComparison.Ordinal) == true)
            .ToList();
        Assert.NotEmpty(endpoints);
        var undecided = endpoints
            .Where(endpoint => endpoint.Metadata.GetMetadata<RequiredPermission>() is null && endpoint.Metadata.GetMetadata<AnyAuthenticatedCaller>() is null)
            .Select(endpoint => endpoint.DisplayName)
            .ToList();
        Assert.Empty(undecided);
    }

    [Fact]
    public void Tenant_roles_grant_only_tenant_permissions_and_each_role_can_grant_only_what_it_holds()
    {
        foreach (var role in Roles.All.Where(r => r.Scope == PermissionScope.Tenant))
        {
            Assert.All(role.Grants, permission => Assert.Equal(PermissionScope.Tenant, permission.Scope));
        }

        Assert.True(Roles.MayGrant(Roles.Find(Roles.Owner)!, Roles.Find(Roles.Admin)!));
        Assert.False(Roles.MayGrant(Roles.Find(Roles.Admin)!, Roles.Find(Roles.Owner)!));
        Assert.False(Roles.MayGrant(Roles.Find(Roles.Member)!, Roles.Find(Roles.BillingViewer)!));
        Assert.True(Roles.MayGrant(Roles.Find(Roles.Member)!, Roles.Find(Roles.Viewer)!));
        Assert.False(Roles.Find(Roles.Sre)!.Allows(Permissions.TenantsCreate));
        Assert.False(Roles.Find(Roles.Finance)!.Allows(Permissions.InstancesRead));
        Assert.Null(Roles.Find(Roles.Sre, PermissionScope.Tenant));
    }

    private static async Task<string> InviteAsync(ControlPlaneApi api, string tenantId, string email, string role)
    {
        using var response = await api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/members", new { email, role });
        return (string)(await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.Created))["member"]!["userId"]!;
    }
}
