using ControlPlane.Auditing;
using ControlPlane.Identity;
using ControlPlane.Security;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace ControlPlane.Portal.Pages;

public sealed class SignInModel(LocalAccounts accounts, UserDirectory users, AuditLog audit, AuthenticationFailures failures, TimeProvider clock) : PageModel
{
    public string? Error { get; private set; }

    public string? Email { get; private set; }

    [BindProperty(SupportsGet = true)]
    public string? ReturnUrl { get; set; }

    /// <summary>Arrives here from a refused single sign-on too: <c>?sso=unavailable</c> or <c>?error=&lt;reason&gt;</c>.</summary>
    public IActionResult OnGet(string? error, string? sso)
    {
        if (User.Identity?.IsAuthenticated == true && User.IsPerson())
        {
            return LocalRedirect(Destination());
        }

        Error = sso == "unavailable"
            ? "Single sign-on is not set up for that email's domain. Sign in with your password, or ask your tenant's owner."
            : error is null ? null : SsoFailures.Explain(error);
        return Page();
    }

    public async Task<IActionResult> OnPostAsync(string? email, string? password, string? code)
    {
        Email = email;
        if (string.IsNullOrWhiteSpace(email) || string.IsNullOrEmpty(password))
        {
            Error = "Enter your email and password.";
            return Status(StatusCodes.Status400BadRequest);
        }

        var address = RequestRateLimits.Address(HttpContext);
        if (failures.MustWait(address) is { } wait)
        {
            Error = $"Too many failed sign-ins from this address. Wait {Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds))} s and try again.";
            Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Status(StatusCodes.Status429TooManyRequests);
        }

        var result = await accounts.SignInAsync(email, password, code, HttpContext.RequestAborted);
        if (result.Result != PasswordCheck.Succeeded)
        {
            failures.Record(address, "password");
            await audit.RecordAsync(AuditedRequests.Entry(
                HttpContext, null, "portal.sign-in", UserDirectory.NormalizeEmail(email), $"rejected:{result.Result.ToString().ToLowerInvariant()}"));
        }

        switch (result.Result)
        {
            case PasswordCheck.Succeeded:
                var method = await accounts.HasTotpAsync(result.User!.Id, HttpContext.RequestAborted) ? "password+totp" : "password";
                await PortalSession.SignInAsync(HttpContext, users, clock, result.User.Id, method, passwordConfirmed: true);
                await audit.RecordAsync(AuditedRequests.Entry(HttpContext, null, "portal.sign-in", result.User.Id, "succeeded", method) with
                {
                    Actor = $"{Principals.UserKind}:{result.User.Id} ({result.User.Email})",
                });
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
