using ControlPlane.Auditing;
using ControlPlane.Identity;
using ControlPlane.Security;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace ControlPlane.Portal.Pages;

public sealed class SignInModel(LocalAccounts accounts, UserDirectory users, AuditLog audit, TimeProvider clock) : PageModel
{
    public string? Error { get; private set; }

    public string? Email { get; private set; }

    [BindProperty(SupportsGet = true)]
    public string? ReturnUrl { get; set; }

    public IActionResult OnGet() => User.Identity?.IsAuthenticated == true && User.IsPerson() ? LocalRedirect(Destination()) : Page();

    public async Task<IActionResult> OnPostAsync(string? email, string? password, string? code)
    {
        Email = email;
        if (string.IsNullOrWhiteSpace(email) || string.IsNullOrEmpty(password))
        {
            Error = "Enter your email and password.";
            return Status(StatusCodes.Status400BadRequest);
        }

        var result = await accounts.SignInAsync(email, password, code, HttpContext.RequestAborted);
        switch (result.Result)
        {
            case PasswordCheck.Succeeded:
                var method = await accounts.HasTotpAsync(result.User!.Id, HttpContext.RequestAborted) ? "password+totp" : "password";
                await PortalSession.SignInAsync(HttpContext, users, clock, result.User.Id, method, passwordConfirmed: true);
                await audit.RecordAsync(new AuditEntry($"{Principals.UserKind}:{result.User.Id} ({result.User.Email})", null, "portal.sign-in", result.User.Id, "succeeded", method));
                return LocalRedirect(Destination());
            case PasswordCheck.CodeRequired:
                Error = "Enter the 6-digit code from your authenticator app as well.";
                return Status(StatusCodes.Status401Unauthorized);
            case PasswordCheck.LockedOut:
                Error = $"Too many wrong attempts: this account is locked until {result.LockedUntil:HH:mm} UTC. Try again then, or ask an admin for a new sign-in link.";
                return Status(StatusCodes.Status429TooManyRequests);
            default:
                Error = "That email and password (or code) do not match an account. Check them and try again.";
                return Status(StatusCodes.Status401Unauthorized);
        }
    }

    private string Destination() =>
        ReturnUrl is { } url && url.StartsWith("/portal", StringComparison.Ordinal) && !url.StartsWith("//", StringComparison.Ordinal) ? url : "/portal";

    private PageResult Status(int status)
    {
        var page = Page();
        page.StatusCode = status;
        return page;
    }
}
