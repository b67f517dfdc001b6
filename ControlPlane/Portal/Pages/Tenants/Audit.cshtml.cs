using ControlPlane.Auditing;
using ControlPlane.Security;

namespace ControlPlane.Portal.Pages.Tenants;

/// <summary>The tenant's audit log (<c>audit:read</c>): the newest entries, read as the audit trail keeps them.</summary>
public sealed class AuditModel(IGrainFactory grains, AuditLog audit) : TenantPage(grains)
{
    public const int Shown = 200;

    public IReadOnlyList<AuditRecord> Entries { get; private set; } = [];

    public async Task OnGetAsync()
    {
        await LoadTenantAsync(Permissions.AuditRead, "audit");
        Entries = await audit.ReadAsync(TenantId, Shown, HttpContext.RequestAborted);
    }
}
