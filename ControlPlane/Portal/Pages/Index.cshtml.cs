using ControlPlane.Api;
using ControlPlane.Security;
using ControlPlane.Tenants;
using Microsoft.AspNetCore.Mvc;

namespace ControlPlane.Portal.Pages;

public sealed record TenantEntry(string Id, string Name, string Plan, int InstanceCount, int MaxInstances, string? Role);

/// <summary>The tenants a person belongs to; platform people see every tenant (<c>tenants:list</c>, as the API's list).</summary>
public sealed class IndexModel(IGrainFactory grains) : PortalPage
{
    public IReadOnlyList<TenantEntry> Tenants { get; private set; } = [];

    public bool IsPlatform => May(Permissions.TenantsList, null);

    public async Task<IActionResult> OnGetAsync()
    {
        var memberships = User.Memberships().ToDictionary(m => m.TenantId, m => m.Role.Name);
        var ids = IsPlatform
            ? (await grains.GetGrain<ITenantDirectoryGrain>(0).ListTenantIdsAsync(PageRequest.First(PageRequest.MaxSize))).Items
            : [.. memberships.Keys];
        if (!IsPlatform && ids.Count == 1)
        {
            return RedirectToPage("/Tenants/Dashboard", new { tenantId = ids[0] });
        }

        var views = await Task.WhenAll(ids.Select(id => grains.GetGrain<ITenantGrain>(id).GetAsync()));
        Tenants = [.. views.OfType<TenantView>()
            .Select(t => new TenantEntry(t.Id, t.Name, t.Plan, t.InstanceCount, t.MaxInstances, memberships.GetValueOrDefault(t.Id)))
            .OrderBy(t => t.Name, StringComparer.OrdinalIgnoreCase)];
        return Page();
    }
}
