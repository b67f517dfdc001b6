using System.Net.Mail;
using System.Security.Claims;
using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Errors;
using ControlPlane.Security;
using Microsoft.Extensions.Options;

namespace ControlPlane.Identity;

public sealed record AddMemberRequest(string? Email, string? Role, string? DisplayName);

public sealed record ChangeMemberRequest(string? Role);

/// <summary>A link that signs its person in once (to set a password or confirm SSO); shown to whoever invited them.</summary>
public sealed record SignInLink(string Url, DateTimeOffset ExpiresAt);

public sealed record AddedMember(Member Member, SignInLink SignInLink);

public sealed record PlatformMember(string UserId, string Email, string? DisplayName, string Role);

public sealed record AddedPlatformMember(PlatformMember Member, SignInLink SignInLink);

public sealed record RoleView(string Name, string Scope, string Description, IReadOnlyList<string> Permissions);

public sealed record MembershipView(string TenantId, string Role, IReadOnlyList<string> Permissions);

/// <summary>Who the caller is and what it may do: what the portal and the CLI show first.</summary>
public sealed record CallerView(
    string Kind, string Id, string Name, string? PlatformRole, IReadOnlyList<string> PlatformPermissions, IReadOnlyList<MembershipView> Memberships);

/// <summary>
/// The team of a tenant (<c>/api/v1/tenants/{tenantId}/members</c>), the platform's operators
/// (<c>/api/v1/platform/members</c>), the roles, and who-am-I (<c>/api/v1/me</c>).
/// </summary>
public static class MemberEndpoints
{
    /// <summary>Where a sign-in link lands in the portal; the token follows as <c>?token=</c>.</summary>
    public const string SignInLinkPath = "/portal/sign-in/link";

    public static IServiceCollection AddIdentity(this IServiceCollection services)
    {
        services.AddSingleton<UserDirectory>();
        return services;
    }

    public static IEndpointRouteBuilder MapMembers(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/v1/me", GetCaller).ForAnyAuthenticatedCaller().WithTags("Identity")
            .WithSummary("Who the caller is: its platform role, its tenants and what it may do in each");
        app.MapGet("/api/v1/roles", ListRoles).ForAnyAuthenticatedCaller().WithTags("Identity")
            .WithSummary("Every role and the permissions it grants");

        var members = app.MapGroup("/api/v1/tenants/{tenantId}/members").WithTags("Identity");
        members.MapGet("", ListMembersAsync).Requires(Permissions.MembersRead).WithSummary("The tenant's members, by email (paged)");
        members.MapPost("", AddMemberAsync)
            .Requires(Permissions.MembersManage)
            .WithSummary("Invite a person by email at a role (at most the caller's own); answers a one-time sign-in link for them")
            .Produces<AddedMember>(201);
        members.MapPatch("/{userId}", ChangeMemberAsync).Requires(Permissions.MembersManage).WithSummary("Change a member's role; the tenant always keeps an owner");
        members.MapDelete("/{userId}", RemoveMemberAsync).Requires(Permissions.MembersManage).WithSummary("Remove a member; the tenant always keeps an owner");

        var platform = app.MapGroup("/api/v1/platform/members").WithTags("Identity");
        platform.MapGet("", ListPlatformMembersAsync).Requires(Permissions.PlatformMembersManage).WithSummary("People with a platform role");
        platform.MapPost("", AddPlatformMemberAsync)
            .Requires(Permissions.PlatformMembersManage)
            .WithSummary("Give a person a platform role (sre, finance, platform-admin); answers a one-time sign-in link for them")
            .Produces<AddedPlatformMember>(201);
        platform.MapDelete("/{userId}", RemovePlatformMemberAsync).Requires(Permissions.PlatformMembersManage).WithSummary("Take a person's platform role away");
        return app;
    }

    private static CallerView GetCaller(ClaimsPrincipal user)
    {
        var platformRole = user.PlatformRole();
        return new CallerView(
            user.IsPerson() ? Principals.UserKind : Principals.ApiKeyKind,
            user.Id()!,
            user.Identity!.Name!,
            platformRole?.Name,
            platformRole is null ? [] : Names(platformRole.Grants),
            [.. user.Memberships().Select(m => new MembershipView(m.TenantId, m.Role.Name, Names(m.Role.Grants)))]);
    }

    private static IReadOnlyList<RoleView> ListRoles() =>
        [.. Roles.All.Select(role => new RoleView(role.Name, role.Scope.ToString().ToLowerInvariant(), role.Description, Names(role.Grants)))];

    private static async Task<ItemList<Member>> ListMembersAsync(
        string tenantId, [AsParameters] PageQuery query, ClaimsPrincipal user, IGrainFactory grains, UserDirectory users, CancellationToken cancellationToken)
    {
        await grains.RequireTenantAsync(user, tenantId);
        var list = $"{tenantId}/members";
        return query.Answer(list, await users.ListMembersAsync(tenantId, query.For(list), cancellationToken));
    }

    private static async Task<IResult> AddMemberAsync(
        string tenantId, AddMemberRequest request, HttpContext context, IGrainFactory grains, UserDirectory users, AuditLog audit)
    {
        var added = await InviteMemberAsync(tenantId, request, context, grains, users, audit);
        return TypedResults.Created($"/api/v1/tenants/{tenantId}/members/{added.Member.UserId}", added);
    }

    /// <summary>Adds a person to the tenant at a role no greater than the caller's, with a one-time sign-in link; audited (API and portal).</summary>
    public static async Task<AddedMember> InviteMemberAsync(
        string tenantId, AddMemberRequest request, HttpContext context, IGrainFactory grains, UserDirectory users, AuditLog audit)
    {
        await grains.RequireTenantAsync(context.User, tenantId);
        var role = ValidateInvitation(request.Email, request.Role, request.DisplayName, PermissionScope.Tenant);
        context.User.DemandMayGrant(tenantId, role);
        return await audit.AuditedAsync(
            context,
            tenantId,
            "member.add",
            target: null,
            async () =>
            {
                var person = await users.EnsureUserAsync(request.Email!, request.DisplayName, CancellationToken.None);
                var member = await users.AddMemberAsync(tenantId, person, role.Name, CancellationToken.None);
                return new AddedMember(member, await LinkAsync(context, users, person.Id));
            },
            result => new AuditOutcome(result.Member.UserId, $"{result.Member.Email} as {result.Member.Role}"),
            outcome: "succeeded");
    }

    /// <summary>Changes a member's role, never to or from one greater than the caller's; audited (API and portal).</summary>
    public static async Task<Member> ChangeMemberAsync(
        string tenantId, string userId, ChangeMemberRequest request, HttpContext context, IGrainFactory grains, UserDirectory users, AuditLog audit)
    {
        await grains.RequireTenantAsync(context.User, tenantId);
        var role = Roles.Find(request.Role, PermissionScope.Tenant) ?? throw new RequestValidationException(new Dictionary<string, string[]>
        {
            ["role"] = [Roles.UnknownRoleError(request.Role, PermissionScope.Tenant)],
        });
        var current = await RequireMemberAsync(tenantId, userId, users, context.RequestAborted);
        context.User.DemandMayGrant(tenantId, Roles.Find(current.Role)!);
        context.User.DemandMayGrant(tenantId, role);
        return (await audit.AuditedAsync(
            context,
            tenantId,
            "member.role.change",
            userId,
            () => users.ChangeMemberAsync(tenantId, userId, role.Name, CancellationToken.None),
            changed => new AuditOutcome(null, $"{current.Email}: {current.Role} -> {changed!.Role}", After: new { role = changed.Role }),
            outcome: "succeeded",
            before: new { role = current.Role }))!;
    }

    private static async Task<IResult> RemoveMemberAsync(
        string tenantId, string userId, HttpContext context, IGrainFactory grains, UserDirectory users, AuditLog audit)
    {
        await RemoveMemberFromTenantAsync(tenantId, userId, context, grains, users, audit);
        return TypedResults.NoContent();
    }

    /// <summary>Removes a member whose role is no greater than the caller's; audited (API and portal).</summary>
    public static async Task RemoveMemberFromTenantAsync(
        string tenantId, string userId, HttpContext context, IGrainFactory grains, UserDirectory users, AuditLog audit)
    {
        await grains.RequireTenantAsync(context.User, tenantId);
        var current = await RequireMemberAsync(tenantId, userId, users, context.RequestAborted);
        context.User.DemandMayGrant(tenantId, Roles.Find(current.Role)!);
        await audit.AuditedAsync(
            context,
            tenantId,
            "member.remove",
            userId,
            () => users.ChangeMemberAsync(tenantId, userId, role: null, CancellationToken.None),
            _ => new AuditOutcome(null, $"{current.Email} ({current.Role})"),
            outcome: "succeeded");
    }

    public static async Task<ItemList<PlatformMember>> ListPlatformMembersAsync(UserDirectory users, CancellationToken cancellationToken) =>
        new([.. (await users.ListPlatformUsersAsync(cancellationToken)).Select(user => new PlatformMember(user.Id, user.Email, user.DisplayName, user.PlatformRole!))]);

    private static async Task<IResult> AddPlatformMemberAsync(AddMemberRequest request, HttpContext context, UserDirectory users, AuditLog audit)
    {
        var added = await GrantPlatformRoleAsync(request, context, users, audit);
        return TypedResults.Created($"/api/v1/platform/members/{added.Member.UserId}", added);
    }

    /// <summary>Gives a person (made on first use) a platform role, with a one-time sign-in link; audited (API and portal).</summary>
    public static async Task<AddedPlatformMember> GrantPlatformRoleAsync(AddMemberRequest request, HttpContext context, UserDirectory users, AuditLog audit)
    {
        var role = ValidateInvitation(request.Email, request.Role, request.DisplayName, PermissionScope.Platform);
        return await audit.AuditedAsync(
            context,
            tenantId: null,
            "platform-member.add",
            target: null,
            async () =>
            {
                var person = await users.EnsureUserAsync(request.Email!, request.DisplayName, CancellationToken.None);
                await users.SetPlatformRoleAsync(person.Id, role.Name, CancellationToken.None);
                return new AddedPlatformMember(
                    new PlatformMember(person.Id, person.Email, person.DisplayName, role.Name), await LinkAsync(context, users, person.Id));
            },
            result => new AuditOutcome(result.Member.UserId, $"{result.Member.Email} as {result.Member.Role}"),
            outcome: "succeeded");
    }

    private static async Task<IResult> RemovePlatformMemberAsync(string userId, HttpContext context, UserDirectory users, AuditLog audit)
    {
        await RevokePlatformRoleAsync(userId, context, users, audit);
        return TypedResults.NoContent();
    }

    /// <summary>Takes a person's platform role away; audited (API and portal).</summary>
    public static async Task<User> RevokePlatformRoleAsync(string userId, HttpContext context, UserDirectory users, AuditLog audit)
    {
        var person = await users.FindAsync(userId, context.RequestAborted) is { PlatformRole: not null } found ? found : throw Problems.NotFound("platform member", userId);
        await audit.AuditedAsync(
            context,
            tenantId: null,
            "platform-member.remove",
            userId,
            async () =>
            {
                await users.SetPlatformRoleAsync(userId, role: null, CancellationToken.None);
                return person;
            },
            _ => new AuditOutcome(null, $"{person.Email} ({person.PlatformRole})"),
            outcome: "succeeded");
        return person;
    }

    private static Role ValidateInvitation(string? email, string? roleName, string? displayName, PermissionScope scope)
    {
        var errors = new Dictionary<string, string[]>();
        if (EmailError(email) is { } emailError)
        {
            errors["email"] = [emailError];
        }

        var role = Roles.Find(roleName, scope);
        if (role is null)
        {
            errors["role"] = [Roles.UnknownRoleError(roleName, scope)];
        }

        if (displayName is not null && Api.Names.TenantNameError(displayName) is { } nameError)
        {
            errors["displayName"] = [nameError];
        }

        RequestValidationException.ThrowIfAny(errors);
        return role!;
    }

    public static string? EmailError(string? email)
    {
        if (string.IsNullOrWhiteSpace(email))
        {
            return "email is required.";
        }

        return email.Length <= 254 && MailAddress.TryCreate(email.Trim(), out var address) && address.Address == email.Trim() && address.Host.Contains('.', StringComparison.Ordinal)
            ? null
            : $"email must be one address such as ada@example.com (it is '{email}').";
    }

    private static async Task<Member> RequireMemberAsync(string tenantId, string userId, UserDirectory users, CancellationToken cancellationToken) =>
        userId.Length <= 40 && await users.FindMemberAsync(tenantId, userId, cancellationToken) is { } member ? member : throw Problems.NotFound("member", userId);

    private static async Task<SignInLink> LinkAsync(HttpContext context, UserDirectory users, string userId)
    {
        var (token, expiresAt) = await users.CreateSignInLinkAsync(userId, CancellationToken.None);
        var link = context.RequestServices.GetRequiredService<IOptions<Portal.PortalOptions>>().Value.Link(context.Request, $"{SignInLinkPath}?token={token}");
        return new SignInLink(link, expiresAt);
    }

    private static IReadOnlyList<string> Names(IEnumerable<Permission> permissions) => [.. permissions.Select(p => p.ToString()).Order(StringComparer.Ordinal)];
}
