using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Identity;
using ControlPlane.Security;
using Microsoft.AspNetCore.Mvc;

namespace ControlPlane.Portal.Pages.Tenants;

/// <summary>The tenant's team (<c>members:read</c>); inviting, changing roles and removing (<c>members:manage</c>) go through the API's own methods.</summary>
public sealed class TeamModel(IGrainFactory grains, UserDirectory users, AuditLog audit) : TenantPage(grains)
{
    public IReadOnlyList<Member> Members { get; private set; } = [];

    public AddedMember? Invited { get; private set; }

    public bool MayManage => May(Permissions.MembersManage, TenantId);

    public string? Me => User.Id();


    public async Task OnGetAsync() => await LoadAsync();

    public async Task<IActionResult> OnPostInviteAsync(string? email, string? role)
    {
        await LoadTenantAsync(Permissions.MembersManage, "team");
        Invited = await AttemptAsync(() => MemberEndpoints.InviteMemberAsync(
            TenantId, new AddMemberRequest(email?.Trim(), role, DisplayName: null), HttpContext, Grains, users, audit));
        if (Invited is null)
        {
            return RedirectToPage();
        }

        await LoadAsync();
        return Page();
    }

    public async Task<IActionResult> OnPostRoleAsync(string userId, string? role)
    {
        await LoadTenantAsync(Permissions.MembersManage, "team");
        return await ActAsync(
            async () => $"{(await MemberEndpoints.ChangeMemberAsync(TenantId, userId, new ChangeMemberRequest(role), HttpContext, Grains, users, audit)).Email} is now {role}.",
            () => RedirectToPage());
    }

    public async Task<IActionResult> OnPostRemoveAsync(string userId)
    {
        await LoadTenantAsync(Permissions.MembersManage, "team");
        return await ActAsync(
            async () =>
            {
                await MemberEndpoints.RemoveMemberFromTenantAsync(TenantId, userId, HttpContext, Grains, users, audit);
                return "Removed. They lose access within 30 seconds.";
            },
            () => RedirectToPage());
    }

    private async Task LoadAsync()
    {
        await LoadTenantAsync(Permissions.MembersRead, "team");
        Members = (await users.ListMembersAsync(TenantId, PageRequest.First(PageRequest.MaxSize), HttpContext.RequestAborted)).Items;
    }
}
