using ControlPlane.Auditing;
using ControlPlane.Identity;
using ControlPlane.Security;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace ControlPlane.Portal.Pages;

/// <summary>
/// Where invitations and the first-start link land (<see cref="MemberEndpoints.SignInLinkPath"/>). Opening the link only
/// shows a button: the link is spent by the POST, so a mail scanner or chat preview that fetches it does not use it up.
/// </summary>
public sealed class SignInLinkModel(UserDirectory users, AuditLog audit, TimeProvider clock) : PageModel
{
    [BindProperty(SupportsGet = true)]
    public string? Token { get; set; }

    public string? Error { get; private set; }

    public IActionResult OnGet()
    {
        if (string.IsNullOrEmpty(Token))
        {
            Error = "The link is incomplete. Copy the whole link you were given into the address bar.";
        }

        return Page();
    }

    public async Task<IActionResult> OnPostAsync()
    {
        var person = string.IsNullOrEmpty(Token) ? null : await users.RedeemSignInLinkAsync(Token, HttpContext.RequestAborted);
        if (person is null)
        {
            Error = "It was already used or has expired. Ask whoever invited you for a new link, or sign in with your password.";
            var gone = Page();
            gone.StatusCode = StatusCodes.Status410Gone;
            return gone;
        }

        await PortalSession.SignInAsync(HttpContext, users, clock, person.Id, "link");
        await audit.RecordAsync(new AuditEntry($"{Principals.UserKind}:{person.Id} ({person.Email})", null, "portal.sign-in", person.Id, "succeeded", "one-time link"));
        return RedirectToPage("/Account", new { welcome = true });
    }
}
