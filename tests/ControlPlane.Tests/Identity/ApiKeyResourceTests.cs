using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using ControlPlane.Persistence;
using ControlPlane.Security;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace ControlPlane.Tests.Identity;

/// <summary>API keys as a resource: created by a tenant's owners and admins at a role, shown once, listed, rotated, revoked.</summary>
public sealed class ApiKeyResourceTests : IDisposable
{
    private readonly ControlPlaneFactory _factory = new();

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task A_key_is_shown_once_stored_hashed_listed_without_its_secret_and_records_its_last_use()
    {
        var admin = _factory.CreateAdminApi();
        var tenantId = (string)(await admin.CreateTenantAsync("Keys Ltd"))["id"]!;
        var owner = await _factory.CreateTenantApiAsync(tenantId, Roles.Owner);

        using var create = await owner.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/api-keys", new { name = "deploy bot", role = "member" });
        var created = await ControlPlaneApi.ExpectAsync(create, HttpStatusCode.Created);
        var secret = (string)created["secret"]!;
        var keyId = (string)created["key"]!["id"]!;
        Assert.Equal("member", (string?)created["key"]!["role"]);
        Assert.Equal("active", (string?)created["key"]!["status"]);
        Assert.Null(created["key"]!["lastUsedAt"]);
        Assert.StartsWith("apikey:", (string?)created["key"]!["createdBy"], StringComparison.Ordinal);

        // The secret is in no other answer and not in the database.
        var listed = await owner.ListAllAsync($"/api/v1/tenants/{tenantId}/api-keys");
        Assert.Contains(listed, key => (string?)key["id"] == keyId);
        Assert.DoesNotContain(secret, string.Join("\n", listed.Select(key => key.ToJsonString())), StringComparison.Ordinal);
        var database = _factory.Services.GetRequiredService<Database>();
        var stored = await database.QueryAsync("SELECT secret_hash FROM api_keys WHERE id = @id;", reader => reader.GetString(0), CancellationToken.None, ("id", keyId));
        Assert.NotEqual(secret, Assert.Single(stored));

        // The new key works, at its role, and its use is recorded.
        var member = ControlPlaneApi.WithKey(_factory.CreateClient(), secret);
        await member.GetAsync($"/api/v1/tenants/{tenantId}/instances");
        var afterUse = (await owner.ListAllAsync($"/api/v1/tenants/{tenantId}/api-keys")).Single(key => (string?)key["id"] == keyId);
        Assert.NotNull(afterUse["lastUsedAt"]);
        using var memberCreatesKey = await member.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/api-keys", new { name = "nope", role = "viewer" });
        await ControlPlaneApi.ExpectProblemAsync(memberCreatesKey, HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task A_revoked_key_is_refused_and_a_rotated_key_keeps_working_only_for_its_overlap()
    {
        var admin = _factory.CreateAdminApi();
        var tenantId = (string)(await admin.CreateTenantAsync("Rotation Ltd"))["id"]!;
        var owner = await _factory.CreateTenantApiAsync(tenantId, Roles.Owner);
        var (viewerId, viewerSecret) = await CreateKeyAsync(owner, tenantId, "viewer");
        var viewer = ControlPlaneApi.WithKey(_factory.CreateClient(), viewerSecret);
        await viewer.GetAsync($"/api/v1/tenants/{tenantId}");

        using (var revoke = await owner.SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{tenantId}/api-keys/{viewerId}"))
        {
            Assert.Equal("revoked", (string?)(await ControlPlaneApi.ExpectAsync(revoke, HttpStatusCode.OK))["status"]);
        }

        using (var refused = await viewer.Http.GetAsync($"/api/v1/tenants/{tenantId}"))
        {
            await ControlPlaneApi.ExpectProblemAsync(refused, HttpStatusCode.Unauthorized, "unauthenticated");
        }

        using (var rotateRevoked = await owner.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/api-keys/{viewerId}:rotate", new { }))
        {
            await ControlPlaneApi.ExpectProblemAsync(rotateRevoked, HttpStatusCode.Conflict, "api-key-inactive");
        }

        // Rotation with no overlap: the old secret stops at once, the new one works with the same name and role.
        var (oldId, oldSecret) = await CreateKeyAsync(owner, tenantId, "member");
        using var rotate = await owner.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/api-keys/{oldId}:rotate", new { oldKeyValidForMinutes = 0 });
        var rotated = await ControlPlaneApi.ExpectAsync(rotate, HttpStatusCode.Created);
        Assert.Equal("member", (string?)rotated["key"]!["role"]);
        Assert.NotEqual(oldId, (string?)rotated["key"]!["id"]);
        using (var old = await ControlPlaneApi.WithKey(_factory.CreateClient(), oldSecret).Http.GetAsync($"/api/v1/tenants/{tenantId}"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, old.StatusCode);
        }

        await ControlPlaneApi.WithKey(_factory.CreateClient(), (string)rotated["secret"]!).GetAsync($"/api/v1/tenants/{tenantId}");

        // With an overlap the old key works until then: its expiry says when.
        var (overlapId, overlapSecret) = await CreateKeyAsync(owner, tenantId, "member");
        using var rotateWithOverlap = await owner.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/api-keys/{overlapId}:rotate", new { oldKeyValidForMinutes = 30 });
        await ControlPlaneApi.ExpectAsync(rotateWithOverlap, HttpStatusCode.Created);
        await ControlPlaneApi.WithKey(_factory.CreateClient(), overlapSecret).GetAsync($"/api/v1/tenants/{tenantId}");
        var oldKey = (await owner.ListAllAsync($"/api/v1/tenants/{tenantId}/api-keys")).Single(key => (string?)key["id"] == overlapId);
        Assert.InRange((DateTimeOffset)oldKey["expiresAt"]!, DateTimeOffset.UtcNow.AddMinutes(29), DateTimeOffset.UtcNow.AddMinutes(31));

        using var outOfRange = await owner.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/api-keys/{overlapId}:rotate", new { oldKeyValidForMinutes = 99999 });
        var problem = await ControlPlaneApi.ExpectProblemAsync(outOfRange, HttpStatusCode.BadRequest);
        Assert.NotNull(problem["errors"]!["oldKeyValidForMinutes"]);
    }

    [Fact]
    public async Task A_key_past_its_expiry_is_refused()
    {
        var admin = _factory.CreateAdminApi();
        var tenantId = (string)(await admin.CreateTenantAsync("Expiry Ltd"))["id"]!;
        var keys = _factory.Services.GetRequiredService<ApiKeyStore>();
        var (_, secret) = await keys.CreateAsync("short-lived", Roles.Viewer, tenantId, expiresAt: DateTimeOffset.UtcNow.AddSeconds(2));
        var viewer = ControlPlaneApi.WithKey(_factory.CreateClient(), secret);
        await viewer.GetAsync($"/api/v1/tenants/{tenantId}");

        await Task.Delay(TimeSpan.FromSeconds(2.5));
        using var expired = await viewer.Http.GetAsync($"/api/v1/tenants/{tenantId}");
        Assert.Equal(HttpStatusCode.Unauthorized, expired.StatusCode);

        var listed = await admin.ListAllAsync($"/api/v1/tenants/{tenantId}/api-keys?includeInactive=true");
        Assert.Equal("expired", (string?)Assert.Single(listed)["status"]);
        Assert.Empty(await admin.ListAllAsync($"/api/v1/tenants/{tenantId}/api-keys"));

        using var pastExpiry = await admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/api-keys", new { name = "x", role = "viewer", expiresAt = DateTimeOffset.UtcNow.AddHours(-1) });
        Assert.NotNull((await ControlPlaneApi.ExpectProblemAsync(pastExpiry, HttpStatusCode.BadRequest))["errors"]!["expiresAt"]);
    }

    [Fact]
    public async Task No_key_can_mint_a_key_that_does_more_than_itself_and_another_tenants_keys_are_not_found()
    {
        var admin = _factory.CreateAdminApi();
        var tenantId = (string)(await admin.CreateTenantAsync("Escalation Ltd"))["id"]!;
        var otherTenantId = (string)(await admin.CreateTenantAsync("Other Ltd"))["id"]!;
        var tenantAdmin = await _factory.CreateTenantApiAsync(tenantId, Roles.Admin);

        using (var ownerKey = await tenantAdmin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/api-keys", new { name = "owner please", role = "owner" }))
        {
            await ControlPlaneApi.ExpectProblemAsync(ownerKey, HttpStatusCode.Forbidden, "role-exceeds-caller");
        }

        using (var platformRole = await tenantAdmin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/api-keys", new { name = "x", role = "platform-admin" }))
        {
            Assert.NotNull((await ControlPlaneApi.ExpectProblemAsync(platformRole, HttpStatusCode.BadRequest))["errors"]!["role"]);
        }

        using (var platformKeys = await tenantAdmin.SendAsync(HttpMethod.Post, "/api/v1/platform/api-keys", new { name = "x", role = "sre" }))
        {
            await ControlPlaneApi.ExpectProblemAsync(platformKeys, HttpStatusCode.Forbidden, "forbidden");
        }

        // Another tenant's key list and keys answer as if they did not exist.
        var (otherKeyId, _) = await CreateKeyAsync(admin, otherTenantId, "viewer");
        using (var otherList = await tenantAdmin.Http.GetAsync($"/api/v1/tenants/{otherTenantId}/api-keys"))
        {
            await ControlPlaneApi.ExpectProblemAsync(otherList, HttpStatusCode.NotFound, "not-found");
        }

        using var revokeOther = await tenantAdmin.SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{tenantId}/api-keys/{otherKeyId}");
        await ControlPlaneApi.ExpectProblemAsync(revokeOther, HttpStatusCode.NotFound, "not-found");
        Assert.Equal("active", (string?)(await admin.ListAllAsync($"/api/v1/tenants/{otherTenantId}/api-keys")).Single()["status"]);
    }

    [Fact]
    public async Task A_made_up_key_is_looked_up_once_and_an_address_that_keeps_failing_gets_429_with_Retry_After()
    {
        _factory.Settings["RateLimits:FailedAuthenticationsBurst"] = "5";
        _factory.Settings["RateLimits:FailedAuthenticationsPerMinute"] = "6";
        var admin = _factory.CreateAdminApi();
        var keys = _factory.Services.GetRequiredService<ApiKeyStore>();
        var database = _factory.Services.GetRequiredService<Database>();

        // Remembered as invalid: once the first lookup said no, the database is not asked again. The proof: a key
        // with that very secret appears in the table behind the cache's back, and the next lookup still says no.
        const string madeUp = "cpk_madeupmadeupmadeupmadeupmadeupmadeupmadeu";
        Assert.Null(await keys.FindAsync(madeUp));
        await database.ExecuteAsync(
            "INSERT INTO api_keys (id, name, secret_hash, role, tenant_id, created_at) VALUES ('key-behindthecache', 'x', @hash, 'platform-admin', NULL, @at);",
            CancellationToken.None,
            ("hash", Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(madeUp)))),
            ("at", database.Timestamp(DateTimeOffset.UtcNow)));
        Assert.Null(await keys.FindAsync(madeUp));

        using var attacker = _factory.CreateClient();
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 8; i++)
        {
            attacker.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", $"cpk_guess{i}");
            using var response = await attacker.GetAsync(new Uri("/api/v1/catalog", UriKind.Relative));
            statuses.Add(response.StatusCode);
        }

        Assert.Equal(Enumerable.Repeat(HttpStatusCode.Unauthorized, 5), statuses.Take(5));
        Assert.All(statuses.Skip(5), status => Assert.Equal(HttpStatusCode.TooManyRequests, status));
        using var limited = await attacker.GetAsync(new Uri("/api/v1/catalog", UriKind.Relative));
        var problem = await ControlPlaneApi.ExpectProblemAsync(limited, HttpStatusCode.TooManyRequests, "too-many-failed-authentications");
        Assert.InRange(limited.Headers.RetryAfter?.Delta ?? TimeSpan.Zero, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(15));
        Assert.Contains("retry after", (string?)problem["detail"], StringComparison.Ordinal);
    }

    private static async Task<(string Id, string Secret)> CreateKeyAsync(ControlPlaneApi api, string tenantId, string role)
    {
        using var response = await api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}/api-keys", new { name = $"{role} {Guid.NewGuid():N}", role });
        var created = await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.Created);
        return ((string)created["key"]!["id"]!, (string)created["secret"]!);
    }
}
