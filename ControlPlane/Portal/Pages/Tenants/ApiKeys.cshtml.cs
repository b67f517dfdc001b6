using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Security;
using Microsoft.AspNetCore.Mvc;

namespace ControlPlane.Portal.Pages.Tenants;

/// <summary>The tenant's API keys (<c>api-keys:read</c>); creating and revoking (<c>api-keys:manage</c>) go through the API's own methods.</summary>
public sealed class ApiKeysModel(IGrainFactory grains, ApiKeyStore keys, AuditLog audit, TimeProvider clock) : TenantPage(grains)
{
    public IReadOnlyList<ApiKeyView> Keys { get; private set; } = [];

    public CreatedApiKey? Created { get; private set; }

    public bool MayManage => May(Permissions.ApiKeysManage, TenantId);


    public async Task OnGetAsync() => await LoadAsync();

    public async Task<IActionResult> OnPostCreateAsync(string? name, string? role, int? days)
    {
        await LoadTenantAsync(Permissions.ApiKeysManage, "api-keys");
        var expiresAt = days is { } d ? clock.GetUtcNow().AddDays(d) : (DateTimeOffset?)null;
        Created = await AttemptAsync(() => ApiKeyEndpoints.CreateKeyAsync(TenantId, new CreateApiKeyRequest(name?.Trim(), role, expiresAt), HttpContext, keys, audit, clock));
        if (Created is null)
        {
            return RedirectToPage();
        }

        await LoadAsync();
        return Page();
    }

    public async Task<IActionResult> OnPostRevokeAsync(string keyId)
    {
        await LoadTenantAsync(Permissions.ApiKeysManage, "api-keys");
        return await ActAsync(
            async () => $"{(await ApiKeyEndpoints.RevokeKeyAsync(TenantId, keyId, HttpContext, keys, audit, clock)).Name} is revoked.",
            () => RedirectToPage());
    }

    private async Task LoadAsync()
    {
        await LoadTenantAsync(Permissions.ApiKeysRead, "api-keys");
        Keys = (await ApiKeyEndpoints.ListKeysAsync(TenantId, includeInactive: true, PageRequest.First(PageRequest.MaxSize), keys, clock, HttpContext.RequestAborted)).Items;
    }
}
