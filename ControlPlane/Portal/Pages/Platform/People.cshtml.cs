using ControlPlane.Auditing;
using ControlPlane.Identity;
using ControlPlane.Security;
using Microsoft.AspNetCore.Mvc;

namespace ControlPlane.Portal.Pages.Platform;

/// <summary>People with a platform role (<c>platform-members:manage</c>): add with a one-time link, take the role away; through the API's own methods.</summary>
public sealed class PlatformPeopleModel(UserDirectory users, AuditLog audit) : PlatformPage
{
    private const string Section = "platform-people";

    public IReadOnlyList<PlatformMember> People { get; private set; } = [];

    public AddedPlatformMember? Added { get; private set; }

    public string? Me => User.Id();

    public async Task OnGetAsync() => await LoadAsync();

    public async Task<IActionResult> OnPostAddAsync(string? email, string? role)
    {
        Enter(Permissions.PlatformMembersManage, Section);
        Added = await AttemptAsync(() => MemberEndpoints.GrantPlatformRoleAsync(new AddMemberRequest(email?.Trim(), role, DisplayName: null), HttpContext, users, audit));
        if (Added is null)
        {
            return RedirectToPage();
        }

        await LoadAsync();
        return Page();
    }

    public async Task<IActionResult> OnPostRemoveAsync(string userId)
    {
        Enter(Permissions.PlatformMembersManage, Section);
        return await ActAsync(
            async () => $"{(await MemberEndpoints.RevokePlatformRoleAsync(userId, HttpContext, users, audit)).Email} no longer has a platform role. They lose it within 30 seconds.",
            () => RedirectToPage());
    }

    private async Task LoadAsync()
    {
        Enter(Permissions.PlatformMembersManage, Section);
        People = (await MemberEndpoints.ListPlatformMembersAsync(users, HttpContext.RequestAborted)).Items;
    }
}
