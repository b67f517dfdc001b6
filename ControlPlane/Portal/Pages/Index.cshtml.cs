using ControlPlane.Api;
using ControlPlane.Auditing;
using Billing.Stripe;
using ControlPlane.Identity;
using ControlPlane.Security;
using ControlPlane.Tenants;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;

namespace ControlPlane.Portal.Pages;

public sealed record TenantEntry(string Id, string Name, string Plan, int InstanceCount, int MaxInstances, string? Role);

/// <summary>A tenant the platform admin just created, with its first owner's one-time link when one was named.</summary>
public sealed record CreatedTenant(TenantView Tenant, AddedMember? Owner);

/// <summary>
/// The tenants a person belongs to; platform people see every tenant (<c>tenants:list</c>, as the API's list), and
/// platform admins create one here with its first owner (<c>tenants:create</c>), through the API's own methods.
/// </summary>
public sealed class IndexModel(IGrainFactory grains, IOptions<PlanOptions> plans, UserDirectory users, AuditLog audit, StripeCustomers stripeCustomers) : PortalPage
{
    public IReadOnlyList<TenantEntry> Tenants { get; private set; } = [];

    public CreatedTenant? Created { get; private set; }

    public bool IsPlatform => May(Permissions.TenantsList, null);

    public bool MayCreate => May(Permissions.TenantsCreate, null);

    public IEnumerable<string> Plans => plans.Value.Definitions.Keys.Order(StringComparer.Ordinal);

    public string DefaultPlan => plans.Value.DefaultPlan;

    public async Task<IActionResult> OnGetAsync()
    {
        var ids = await LoadAsync();
        return !IsPlatform && ids.Count == 1 ? RedirectToPage("/Tenants/Dashboard", new { tenantId = ids[0] }) : Page();
    }

    public async Task<IActionResult> OnPostCreateAsync(string? name, string? plan, string? ownerEmail)
    {
        Demand(Permissions.TenantsCreate, null);
        ownerEmail = string.IsNullOrWhiteSpace(ownerEmail) ? null : ownerEmail.Trim();
        Created = await AttemptAsync(async () =>
        {
            // The owner's address is checked first, so a typo does not leave a tenant without its owner.
            if (ownerEmail is not null && MemberEndpoints.EmailError(ownerEmail) is { } emailError)
            {
                throw new RequestValidationException(new Dictionary<string, string[]> { ["ownerEmail"] = [emailError] });
            }

            var tenant = await TenantEndpoints.CreateAsync(new CreateTenantRequest(name?.Trim(), plan), HttpContext, grains, plans, audit, stripeCustomers);
            var owner = ownerEmail is null
                ? null
                : await MemberEndpoints.InviteMemberAsync(tenant.Id, new AddMemberRequest(ownerEmail, Roles.Owner, DisplayName: null), HttpContext, grains, users, audit);
            return new CreatedTenant(tenant, owner);
        });
        if (Created is null)
        {
            return RedirectToPage();
        }

        await LoadAsync();
        return Page();
    }

    private async Task<IReadOnlyList<string>> LoadAsync()
    {
        var memberships = User.Memberships().ToDictionary(m => m.TenantId, m => m.Role.Name);
        var ids = IsPlatform
            ? (await grains.GetGrain<ITenantDirectoryGrain>(0).ListTenantIdsAsync(PageRequest.First(PageRequest.MaxSize))).Items
            : [.. memberships.Keys];
        var views = await Task.WhenAll(ids.Select(id => grains.GetGrain<ITenantGrain>(id).GetAsync()));
        Tenants = [.. views.OfType<TenantView>()
            .Select(t => new TenantEntry(t.Id, t.Name, t.Plan, t.InstanceCount, t.MaxInstances, memberships.GetValueOrDefault(t.Id)))
            .OrderBy(t => t.Name, StringComparer.OrdinalIgnoreCase)];
        return ids;
    }
}
