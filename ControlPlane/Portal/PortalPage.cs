using ControlPlane.Security;
using ControlPlane.Tenants;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace ControlPlane.Portal;

/// <summary>A portal page: who is signed in, and the one authorization check every page and action makes.</summary>
public abstract class PortalPage : PageModel
{
    /// <summary>A one-line outcome of the last action, shown once at the top of the next page.</summary>
    [TempData]
    public string? Notice { get; set; }

    /// <summary>Throws the API's refusal (404 for a tenant the person cannot see, 403 otherwise) unless the person may.</summary>
    protected void Demand(Permission permission, string? tenantId) => User.Demand(permission, tenantId);

    public bool May(Permission permission, string? tenantId) => User.Allows(permission, tenantId);

    /// <summary>Whether a 404 from an action is a notice on the page (a person or key gone meanwhile) rather than the page's own 404.</summary>
    protected virtual bool NotFoundIsNotice => false;

    /// <summary>Runs an action; a refusal the person can act on (validation, conflict, quota) comes back as a notice on the page.</summary>
    protected async Task<IActionResult> ActAsync(Func<Task<string>> action, Func<IActionResult> then)
    {
        if (await AttemptAsync(action) is { } done)
        {
            Notice = done;
        }

        return then();
    }

    /// <summary>Runs an action whose answer the page shows (a secret, a link); null, with the refusal as an error notice, when refused.</summary>
    protected async Task<T?> AttemptAsync<T>(Func<Task<T>> action)
        where T : class
    {
        try
        {
            return await action();
        }
        catch (Exception refused) when (refused is Errors.ControlPlaneException { Kind: not Errors.ProblemKind.NotFound } or Api.RequestValidationException
            || (NotFoundIsNotice && refused is Errors.ControlPlaneException))
        {
            Notice = PortalProblemWriter.Describe(refused);
            TempData["NoticeKind"] = "error";
            return null;
        }
    }

    /// <summary>The page as it is, answered with <paramref name="status"/> (a refused form keeps what was typed).</summary>
    protected PageResult WithStatus(int status)
    {
        var page = Page();
        page.StatusCode = status;
        return page;
    }
}

/// <summary>A page of one tenant (<c>/portal/tenants/{tenantId}/…</c>): the tenant is read once the person may see it.</summary>
public abstract class TenantPage(IGrainFactory grains) : PortalPage
{
    [FromRoute]
    public string TenantId { get; set; } = "";

    public TenantView Tenant { get; private set; } = null!;

    protected IGrainFactory Grains => grains;

    /// <summary>The tenant roles this person may hand out (to a member or a key): never more than their own.</summary>
    public IReadOnlyList<string> Grantable =>
        (User.PlatformRole() ?? User.TenantRole(TenantId)) is { } mine
            ? [.. Roles.All.Where(r => r.Scope == PermissionScope.Tenant && Roles.MayGrant(mine, r)).Select(r => r.Name)]
            : [];

    /// <summary>Demands <paramref name="permission"/> in the tenant (404 when it is not theirs) and reads the tenant.</summary>
    protected async Task LoadTenantAsync(Permission permission, string section)
    {
        Demand(permission, TenantId);
        var tenant = await grains.RequireTenantAsync(User, TenantId);
        Tenant = (await tenant.GetAsync())!;
        ViewData["TenantId"] = TenantId;
        ViewData["TenantName"] = Tenant.Name;
        ViewData["Section"] = section;
    }
}

/// <summary>What the API keys list shows, for a tenant's keys or the platform's (<c>Shared/_ApiKeyList.cshtml</c>).</summary>
public sealed record ApiKeyListView(IReadOnlyList<ApiKeyView> Keys, CreatedApiKey? Created, bool MayManage, IReadOnlyList<string> Grantable, string DefaultRole);

/// <summary>A page of the platform's own (<c>/portal/platform/…</c>): its people and keys, for platform roles only.</summary>
public abstract class PlatformPage : PortalPage
{
    /// <summary>The platform roles this person may hand out: never more than their own.</summary>
    public IReadOnlyList<string> Grantable =>
        User.PlatformRole() is { } mine ? [.. Roles.All.Where(r => r.Scope == PermissionScope.Platform && Roles.MayGrant(mine, r)).Select(r => r.Name)] : [];

    /// <summary>Demands <paramref name="permission"/> on the platform (403 otherwise) and marks the section for the navigation.</summary>
    protected void Enter(Permission permission, string section)
    {
        Demand(permission, null);
        ViewData["Platform"] = true;
        ViewData["Section"] = section;
    }

    protected override bool NotFoundIsNotice => true;
}
