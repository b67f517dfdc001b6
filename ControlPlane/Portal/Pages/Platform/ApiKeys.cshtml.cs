using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Security;
using Microsoft.AspNetCore.Mvc;

namespace ControlPlane.Portal.Pages.Platform;

/// <summary>The platform's API keys (<c>platform-api-keys:manage</c>), through the API's own methods with no tenant.</summary>
public sealed class PlatformApiKeysModel(ApiKeyStore keys, AuditLog audit, TimeProvider clock) : PlatformPage
{
    private const string Section = "platform-api-keys";

    public IReadOnlyList<ApiKeyView> Keys { get; private set; } = [];

    public CreatedApiKey? Created { get; private set; }

    public async Task OnGetAsync() => await LoadAsync();

    public async Task<IActionResult> OnPostCreateAsync(string? name, string? role, int? days)
    {
        Enter(Permissions.PlatformApiKeysManage, Section);
        var expiresAt = days is { } d ? clock.GetUtcNow().AddDays(d) : (DateTimeOffset?)null;
        Created = await AttemptAsync(() => ApiKeyEndpoints.CreateKeyAsync(tenantId: null, new CreateApiKeyRequest(name?.Trim(), role, expiresAt), HttpContext, keys, audit, clock));
        if (Created is null)
        {
            return RedirectToPage();
        }

        await LoadAsync();
        return Page();
    }

    public async Task<IActionResult> OnPostRevokeAsync(string keyId)
    {
        Enter(Permissions.PlatformApiKeysManage, Section);
        return await ActAsync(
            async () => $"{(await ApiKeyEndpoints.RevokeKeyAsync(tenantId: null, keyId, HttpContext, keys, audit, clock)).Name} is revoked.",
            () => RedirectToPage());
    }

    private async Task LoadAsync()
    {
        Enter(Permissions.PlatformApiKeysManage, Section);
        Keys = (await ApiKeyEndpoints.ListKeysAsync(tenantId: null, includeInactive: true, PageRequest.First(PageRequest.MaxSize), keys, clock, HttpContext.RequestAborted)).Items;
    }
}
