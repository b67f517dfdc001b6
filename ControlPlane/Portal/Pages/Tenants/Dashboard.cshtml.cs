using Billing;
using Billing.Sla;
using Billing.Usage;
using ControlPlane.Security;

namespace ControlPlane.Portal.Pages.Tenants;

/// <summary>A tenant at a glance: its instances with live state (as <c>instances:read</c>), its usage and SLA this month.</summary>
public sealed class DashboardModel(
    IGrainFactory grains, TenantUsage usage, SlaReports reports, [FromKeyedServices(BillingClock.Key)] TimeProvider billingClock) : TenantPage(grains)
{
    public IReadOnlyList<InstanceStatus>? Instances { get; private set; }

    public TenantUsageReport? Usage { get; private set; }

    public TenantSlaReport? Sla { get; private set; }

    public bool MayOperate => May(Permissions.InstancesOperate, TenantId);

    public async Task OnGetAsync()
    {
        await LoadTenantAsync(Permissions.TenantRead, "dashboard");
        var month = SlaMonth.Of(billingClock.GetUtcNow());
        var instances = May(Permissions.InstancesRead, TenantId) ? LiveStatus.ListAsync(Grains, User, TenantId) : null;
        var usageReport = May(Permissions.UsageRead, TenantId) ? usage.ForTenantAsync(TenantId, month, HttpContext.RequestAborted) : null;
        var slaReport = May(Permissions.SlaRead, TenantId) ? reports.ForTenantAsync(TenantId, month, HttpContext.RequestAborted) : null;
        Instances = instances is null ? null : await instances;
        Usage = usageReport is null ? null : await usageReport;
        Sla = slaReport is null ? null : await slaReport;
    }
}
