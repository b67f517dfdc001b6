using System.Security.Claims;
using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Errors;

namespace ControlPlane.Security;

public sealed record CreateApiKeyRequest(string? Name, string? Role, DateTimeOffset? ExpiresAt);

public sealed record RotateApiKeyRequest(int? OldKeyValidForMinutes);

/// <summary>A key as its owners see it. <see cref="Status"/> is <c>active</c>, <c>expired</c> or <c>revoked</c>.</summary>
public sealed record ApiKeyView(
    string Id,
    string Name,
    string Role,
    string? TenantId,
    string Status,
    DateTimeOffset CreatedAt,
    string? CreatedBy,
    DateTimeOffset? ExpiresAt,
    DateTimeOffset? LastUsedAt,
    DateTimeOffset? RevokedAt);

/// <summary>The one answer that carries a key's secret: it is not stored and cannot be shown again.</summary>
public sealed record CreatedApiKey(ApiKeyView Key, string Secret);

/// <summary>
/// API keys as a resource, for a tenant (<c>/api/v1/tenants/{tenantId}/api-keys</c>, tenant roles) and for the
/// platform (<c>/api/v1/platform/api-keys</c>, platform roles). A key holds one role and never more than its creator.
/// </summary>
public static class ApiKeyEndpoints
{
    public const int MaxOverlapMinutes = 24 * 60;
    public static readonly TimeSpan MaxLifetime = TimeSpan.FromDays(3 * 365);

    public static IEndpointRouteBuilder MapApiKeys(this IEndpointRouteBuilder app)
    {
        var tenant = app.MapGroup("/api/v1/tenants/{tenantId}/api-keys").WithTags("API keys");
        tenant.MapGet("", (string tenantId, [AsParameters] PageQuery query, bool? includeInactive, ApiKeyStore keys, TimeProvider clock, CancellationToken cancellationToken) =>
                ListAsync(tenantId, query, includeInactive, keys, clock, cancellationToken))
            .Requires(Permissions.ApiKeysRead)
            .WithSummary("The tenant's API keys, newest first (paged; ?includeInactive=true adds revoked and expired ones); never their secrets");
        tenant.MapPost("", (string tenantId, CreateApiKeyRequest request, HttpContext context, ApiKeyStore keys, AuditLog audit, TimeProvider clock) =>
                CreateAsync(tenantId, request, context, keys, audit, clock))
            .Requires(Permissions.ApiKeysManage)
            .WithSummary("Create a key with a tenant role (at most the caller's own); its secret is in this answer only")
            .Produces<CreatedApiKey>(201);
        tenant.MapDelete("/{keyId}", (string tenantId, string keyId, HttpContext context, ApiKeyStore keys, AuditLog audit, TimeProvider clock) =>
                RevokeAsync(tenantId, keyId, context, keys, audit, clock))
            .Requires(Permissions.ApiKeysManage)
            .WithSummary("Revoke a key: every silo refuses it within seconds");
        tenant.MapPost("/{keyId}:rotate", (string tenantId, string keyId, RotateApiKeyRequest? request, HttpContext context, ApiKeyStore keys, AuditLog audit, TimeProvider clock) =>
                RotateAsync(tenantId, keyId, request, context, keys, audit, clock))
            .Requires(Permissions.ApiKeysManage)
            .WithSummary("Replace a key with a new secret of the same name and role; the old one stops now or after oldKeyValidForMinutes")
            .Produces<CreatedApiKey>(201);

        var platform = app.MapGroup("/api/v1/platform/api-keys").WithTags("API keys");
        platform.MapGet("", ([AsParameters] PageQuery query, bool? includeInactive, ApiKeyStore keys, TimeProvider clock, CancellationToken cancellationToken) =>
                ListAsync(null, query, includeInactive, keys, clock, cancellationToken))
            .Requires(Permissions.PlatformApiKeysManage)
            .WithSummary("The platform's API keys (SRE, finance, platform admin), newest first (paged)");
        platform.MapPost("", (CreateApiKeyRequest request, HttpContext context, ApiKeyStore keys, AuditLog audit, TimeProvider clock) =>
                CreateAsync(null, request, context, keys, audit, clock))
            .Requires(Permissions.PlatformApiKeysManage)
            .WithSummary("Create a platform key (sre, finance or platform-admin); its secret is in this answer only")
            .Produces<CreatedApiKey>(201);
        platform.MapDelete("/{keyId}", (string keyId, HttpContext context, ApiKeyStore keys, AuditLog audit, TimeProvider clock) =>
                RevokeAsync(null, keyId, context, keys, audit, clock))
            .Requires(Permissions.PlatformApiKeysManage)
            .WithSummary("Revoke a platform key");
        platform.MapPost("/{keyId}:rotate", (string keyId, RotateApiKeyRequest? request, HttpContext context, ApiKeyStore keys, AuditLog audit, TimeProvider clock) =>
                RotateAsync(null, keyId, request, context, keys, audit, clock))
            .Requires(Permissions.PlatformApiKeysManage)
            .WithSummary("Replace a platform key with a new secret")
            .Produces<CreatedApiKey>(201);
        return app;
    }

    private static async Task<ItemList<ApiKeyView>> ListAsync(
        string? tenantId, PageQuery query, bool? includeInactive, ApiKeyStore keys, TimeProvider clock, CancellationToken cancellationToken)
    {
        var list = $"{tenantId ?? "platform"}/api-keys";
        return query.Answer(list, await ListKeysAsync(tenantId, includeInactive == true, query.For(list), keys, clock, cancellationToken));
    }

    /// <summary>A page of keys as their owners see them, never their secrets (the API and the portal both call it).</summary>
    public static async Task<Page<ApiKeyView>> ListKeysAsync(
        string? tenantId, bool includeInactive, PageRequest page, ApiKeyStore keys, TimeProvider clock, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        return (await keys.ListAsync(tenantId, includeInactive, page, cancellationToken)).Select(key => View(key, now));
    }

    private static async Task<IResult> CreateAsync(
        string? tenantId, CreateApiKeyRequest request, HttpContext context, ApiKeyStore keys, AuditLog audit, TimeProvider clock)
    {
        var created = await CreateKeyAsync(tenantId, request, context, keys, audit, clock);
        return TypedResults.Created(KeyPath(tenantId, created.Key.Id), created);
    }

    /// <summary>Creates a key with a role no greater than the caller's; the answer holds its only copy of the secret. Audited (API and portal).</summary>
    public static async Task<CreatedApiKey> CreateKeyAsync(
        string? tenantId, CreateApiKeyRequest request, HttpContext context, ApiKeyStore keys, AuditLog audit, TimeProvider clock)
    {
        var now = clock.GetUtcNow();
        var errors = new Dictionary<string, string[]>();
        if (Names.TenantNameError(request.Name) is { } nameError)
        {
            errors["name"] = [nameError];
        }

        var scope = tenantId is null ? PermissionScope.Platform : PermissionScope.Tenant;
        var role = Roles.Find(request.Role, scope);
        if (role is null)
        {
            errors["role"] = [Roles.UnknownRoleError(request.Role, scope)];
        }

        if (request.ExpiresAt is { } expiresAt && (expiresAt <= now + TimeSpan.FromMinutes(1) || expiresAt > now + MaxLifetime))
        {
            errors["expiresAt"] = [$"expiresAt must be more than a minute from now and at most {MaxLifetime.TotalDays:0} days away (it is {expiresAt:O})."];
        }

        RequestValidationException.ThrowIfAny(errors);
        context.User.DemandMayGrant(tenantId, role!);
        var created = await audit.AuditedAsync(
            context,
            tenantId,
            "api-key.create",
            target: null,
            () => keys.CreateAsync(request.Name!, role!.Name, tenantId, request.ExpiresAt, context.User.Actor(), CancellationToken.None),
            result => new AuditOutcome(result.Key.Id, $"role {result.Key.Role}" + (result.Key.ExpiresAt is { } at ? $", expires {at:O}" : "")),
            outcome: "succeeded");
        return new CreatedApiKey(View(created.Key, now), created.Secret);
    }

    private static async Task<IResult> RevokeAsync(string? tenantId, string keyId, HttpContext context, ApiKeyStore keys, AuditLog audit, TimeProvider clock) =>
        TypedResults.Ok(await RevokeKeyAsync(tenantId, keyId, context, keys, audit, clock));

    /// <summary>Revokes a key whose role is no greater than the caller's; audited (API and portal).</summary>
    public static async Task<ApiKeyView> RevokeKeyAsync(string? tenantId, string keyId, HttpContext context, ApiKeyStore keys, AuditLog audit, TimeProvider clock)
    {
        var key = await RequireKeyAsync(tenantId, keyId, keys, context.RequestAborted);
        context.User.DemandMayGrant(tenantId, Roles.Find(key.Role)!);
        await audit.AuditedAsync(
            context,
            tenantId,
            "api-key.revoke",
            keyId,
            async () =>
            {
                await keys.RevokeAsync(keyId, CancellationToken.None);
                return key;
            },
            _ => new AuditOutcome(null, key.RevokedAt is null ? $"role {key.Role}" : "already revoked"),
            outcome: "succeeded");
        return View((await keys.FindByIdAsync(keyId, CancellationToken.None))!, clock.GetUtcNow());
    }

    private static async Task<IResult> RotateAsync(
        string? tenantId, string keyId, RotateApiKeyRequest? request, HttpContext context, ApiKeyStore keys, AuditLog audit, TimeProvider clock)
    {
        var minutes = request?.OldKeyValidForMinutes ?? 0;
        if (minutes is < 0 or > MaxOverlapMinutes)
        {
            throw new RequestValidationException(new Dictionary<string, string[]>
            {
                ["oldKeyValidForMinutes"] = [$"oldKeyValidForMinutes must be between 0 and {MaxOverlapMinutes} (it is {minutes})."],
            });
        }

        var now = clock.GetUtcNow();
        var old = await RequireKeyAsync(tenantId, keyId, keys, context.RequestAborted);
        if (old.RevokedAt is not null || old.ExpiresAt <= now)
        {
            throw new ControlPlaneException(
                ProblemKind.Conflict,
                "api-key-inactive",
                "The key no longer works",
                $"Key '{keyId}' is {(old.RevokedAt is null ? "expired" : "revoked")}; create a new key instead of rotating it.");
        }

        context.User.DemandMayGrant(tenantId, Roles.Find(old.Role)!);
        var rotated = await audit.AuditedAsync(
            context,
            tenantId,
            "api-key.rotate",
            keyId,
            () => keys.RotateAsync(old, TimeSpan.FromMinutes(minutes), context.User.Actor(), CancellationToken.None),
            result => new AuditOutcome(keyId, $"replaced by {result.Key.Id}; the old key {(minutes == 0 ? "stopped now" : $"works {minutes} more minutes")}"),
            outcome: "succeeded");
        return TypedResults.Created(KeyPath(tenantId, rotated.Key.Id), new CreatedApiKey(View(rotated.Key, now), rotated.Secret));
    }

    /// <summary>A key of this tenant (or of the platform); any other id is a 404, whoever owns it.</summary>
    private static async Task<ApiKeyRecord> RequireKeyAsync(string? tenantId, string keyId, ApiKeyStore keys, CancellationToken cancellationToken) =>
        keyId.Length <= 40 && await keys.FindByIdAsync(keyId, cancellationToken) is { } key && key.TenantId == tenantId
            ? key
            : throw Problems.NotFound("API key", keyId);

    private static string KeyPath(string? tenantId, string keyId) =>
        tenantId is null ? $"/api/v1/platform/api-keys/{keyId}" : $"/api/v1/tenants/{tenantId}/api-keys/{keyId}";

    private static ApiKeyView View(ApiKeyRecord key, DateTimeOffset now) => new(
        key.Id,
        key.Name,
        key.Role,
        key.TenantId,
        key.RevokedAt is not null ? "revoked" : key.ExpiresAt <= now ? "expired" : "active",
        key.CreatedAt,
        key.CreatedBy,
        key.ExpiresAt,
        key.LastUsedAt,
        key.RevokedAt);
}
