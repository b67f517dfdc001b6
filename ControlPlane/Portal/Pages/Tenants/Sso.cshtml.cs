using ControlPlane.Auditing;
using ControlPlane.Identity;
using ControlPlane.Security;
using Microsoft.AspNetCore.Mvc;

namespace ControlPlane.Portal.Pages.Tenants;

/// <summary>
/// The tenant's single sign-on (<c>sso:read</c>); owners change it (<c>sso:manage</c>) through the API's own method, so the
/// issuer is checked and the change audited the same way. The client secret is write-only: left empty, the stored one stays.
/// </summary>
public sealed class SsoModel(IGrainFactory grains, SsoSettingsStore store, SsoProvider provider, AuditLog audit) : TenantPage(grains)
{
    public SsoSettingsView? Settings { get; private set; }

    public string RedirectUri => SsoSignIn.RedirectUri(Request);

    public bool MayManage => May(Permissions.SsoManage, TenantId);

    public async Task OnGetAsync() => await LoadAsync();

    public async Task<IActionResult> OnPostSaveAsync(string? issuer, string? clientId, string? clientSecret, string? domains, string? defaultRole, bool enabled)
    {
        await LoadTenantAsync(Permissions.SsoManage, "sso");
        var request = new PutSsoSettingsRequest(
            issuer?.Trim(),
            clientId?.Trim(),
            string.IsNullOrEmpty(clientSecret) ? null : clientSecret,
            (domains ?? "").Split([',', ' ', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            defaultRole,
            enabled);
        return await ActAsync(
            async () =>
            {
                await SsoEndpoints.PutSettingsAsync(TenantId, request, HttpContext, Grains, store, provider, audit);
                return "Single sign-on is saved. People with an allowed email address can now choose \"Sign in with SSO\".";
            },
            () => RedirectToPage());
    }

    private async Task LoadAsync()
    {
        await LoadTenantAsync(Permissions.SsoRead, "sso");
        Settings = await store.GetAsync(TenantId, HttpContext.RequestAborted) is { } stored ? SsoSettingsView.Of(stored, RedirectUri) : null;
    }
}
