using ControlPlane.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace ControlPlane.Portal.Pages;

public sealed class SignOutModel : PageModel
{
    public void OnGet()
    {
    }

    public async Task<IActionResult> OnPostAsync()
    {
        await PortalSession.SignOutAsync(HttpContext);
        return Redirect("/portal/sign-in");
    }
}
