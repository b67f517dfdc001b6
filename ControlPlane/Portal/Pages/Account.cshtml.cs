using ControlPlane.Auditing;
using ControlPlane.Identity;
using ControlPlane.Security;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.Extensions.Options;

namespace ControlPlane.Portal.Pages;

public sealed class AccountModel(LocalAccounts accounts, UserDirectory users, AuditLog audit, IOptions<LocalAccountOptions> policy, TimeProvider clock) : PortalPage
{
    public User Person { get; private set; } = null!;

    public bool HasPassword { get; private set; }

    public bool HasTotp { get; private set; }

    /// <summary>Changing a password asks for the current one, except right after a one-time link (which is how a forgotten one is replaced).</summary>
    public bool NeedsCurrentPassword => HasPassword && User.FindFirst(PortalSession.AuthenticationMethodClaim)?.Value != "link";

    public int MinLength => policy.Value.MinPasswordLength;

    public string? PasswordError { get; private set; }

    public string? TotpError { get; private set; }

    public TotpEnrolment? Enrolment { get; private set; }

    public async Task<IActionResult> OnGetAsync()
    {
        await LoadAsync();
        return Page();
    }

    public async Task<IActionResult> OnPostPasswordAsync(string? current, string? password, string? repeat)
    {
        await LoadAsync();
        if (NeedsCurrentPassword && await accounts.ConfirmPasswordAsync(Person.Id, current ?? "", HttpContext.RequestAborted) != PasswordCheck.Succeeded)
        {
            return Refuse("Your current password is not right.");
        }

        if (password != repeat)
        {
            return Refuse("The two new passwords differ. Type the same password twice.");
        }

        if (accounts.PasswordError(Person, password) is { } error)
        {
            return Refuse(error);
        }

        await accounts.SetPasswordAsync(Person, password!, HttpContext.RequestAborted);
        await audit.RecordAsync(new AuditEntry(User.Actor(), null, "portal.password.set", Person.Id, "succeeded"));
        await PortalSession.ConfirmPasswordAsync(HttpContext, clock);
        Notice = "Your password is saved. Use it with your email to sign in from now on.";
        return Redirect("/portal");
    }

    public async Task<IActionResult> OnPostEnrolTotpAsync()
    {
        await LoadAsync();
        if (!HasPassword)
        {
            TotpError = "Choose a password first: the code is a second step after it.";
            return Page();
        }

        Enrolment = await accounts.BeginTotpEnrolmentAsync(Person, "Control plane", HttpContext.RequestAborted);
        return Page();
    }

    public async Task<IActionResult> OnPostConfirmTotpAsync(string? code)
    {
        await LoadAsync();
        if (!await accounts.ConfirmTotpAsync(Person.Id, code ?? "", HttpContext.RequestAborted))
        {
            TotpError = "That code did not match. Set up the app again and enter the code it shows now.";
            return WithStatus(StatusCodes.Status400BadRequest);
        }

        await audit.RecordAsync(new AuditEntry(User.Actor(), null, "portal.totp.enable", Person.Id, "succeeded"));
        Notice = "Two-step sign-in is on.";
        return RedirectToPage();
    }

    private PageResult Refuse(string error)
    {
        PasswordError = error;
        return WithStatus(StatusCodes.Status400BadRequest);
    }

    private async Task LoadAsync()
    {
        Person = await users.FindAsync(User.Id()!, HttpContext.RequestAborted) ?? throw new InvalidOperationException("The signed-in person does not exist.");
        HasPassword = await accounts.HasPasswordAsync(Person.Id, HttpContext.RequestAborted);
        HasTotp = await accounts.HasTotpAsync(Person.Id, HttpContext.RequestAborted);
    }
}
