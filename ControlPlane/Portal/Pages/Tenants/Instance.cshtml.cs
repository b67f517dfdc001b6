using Billing;
using Billing.Sla;
using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Catalog;
using ControlPlane.Errors;
using ControlPlane.Identity;
using ControlPlane.Instances;
using ControlPlane.Operations;
using ControlPlane.Security;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using Provisioner.Catalog;

namespace ControlPlane.Portal.Pages.Tenants;

/// <summary>
/// One instance: how to connect, its credentials (<c>instance-credentials:read</c>, audited, after the password is confirmed
/// again when the last confirmation is older than <see cref="PortalOptions.ReauthenticateAfterMinutes"/>), its health
/// history, SLA and operations, and stop/start/scale/delete (<c>instances:operate</c>) through the API's own methods.
/// </summary>
public sealed class InstanceModel(
    IGrainFactory grains,
    ProductCatalog catalog,
    AuditLog audit,
    LocalAccounts accounts,
    SlaReports reports,
    IOptions<PortalOptions> options,
    TimeProvider clock,
    [FromKeyedServices(BillingClock.Key)] TimeProvider billingClock) : TenantPage(grains)
{
    [FromRoute]
    public string InstanceId { get; set; } = "";

    public InstanceStatus Status { get; private set; } = null!;

    public IReadOnlyList<InstanceEvent> Events { get; private set; } = [];

    public IReadOnlyList<OperationRecord>? Operations { get; private set; }

    public InstanceSlaReport? Sla { get; private set; }

    public IReadOnlyList<CatalogSize> Sizes { get; private set; } = [];

    public InstanceCredentials? Credentials { get; private set; }

    public string? CredentialsError { get; private set; }

    public bool MayOperate => May(Permissions.InstancesOperate, TenantId);

    public bool MayReadCredentials => May(Permissions.CredentialsRead, TenantId);

    /// <summary>Whether revealing asks for the password first: no confirmation in this session, or an old one.</summary>
    public bool NeedsPassword =>
        PortalSession.PasswordConfirmedAt(User) is not { } at || clock.GetUtcNow() - at > TimeSpan.FromMinutes(options.Value.ReauthenticateAfterMinutes);

    public bool NeedsReason => User.NeedsRecordedReason(TenantId);

    public async Task OnGetAsync() => await LoadAsync(Permissions.InstancesRead);

    public async Task<IActionResult> OnPostRevealAsync(string? password, string? reason)
    {
        await LoadAsync(Permissions.CredentialsRead);
        if (NeedsPassword)
        {
            var check = await accounts.ConfirmPasswordAsync(User.Id()!, password ?? "", HttpContext.RequestAborted);
            if (check != PasswordCheck.Succeeded)
            {
                CredentialsError = check == PasswordCheck.LockedOut
                    ? "Too many wrong passwords: your account is locked for a while. Try again later."
                    : "That password is not right. Enter the password you sign in with.";
                return WithStatus(StatusCodes.Status401Unauthorized);
            }

            await PortalSession.ConfirmPasswordAsync(HttpContext, clock);
        }

        if (NeedsReason)
        {
            // The API takes an SRE's reason from this header; the portal's form fills it, so both reach the same check and audit record.
            Request.Headers[Access.AccessReasonHeader] = reason ?? "";
        }

        try
        {
            Credentials = await InstanceEndpoints.ReadCredentialsAsync(TenantId, InstanceId, HttpContext, Grains, audit);
        }
        catch (ControlPlaneException refused) when (refused.Kind is not ProblemKind.NotFound)
        {
            CredentialsError = refused.Detail;
            return WithStatus(ProblemResponses.StatusFor(refused.Kind));
        }

        return Page();
    }

    public Task<IActionResult> OnPostStopAsync() => RunAsync(OperationType.Stop, "Stopping");

    public Task<IActionResult> OnPostStartAsync() => RunAsync(OperationType.Start, "Starting");

    public async Task<IActionResult> OnPostScaleAsync(string? size)
    {
        await LoadTenantAsync(Permissions.InstancesOperate, "dashboard");
        return await ActAsync(
            async () =>
            {
                await InstanceEndpoints.UpdateInstanceAsync(TenantId, InstanceId, new UpdateInstanceRequest(size, Version: null), HttpContext, Grains, catalog, audit);
                return $"Changing the size to {size}. The instance restarts with its data.";
            },
            () => RedirectToPage());
    }

    public async Task<IActionResult> OnPostDeleteAsync(string? confirmName)
    {
        await LoadTenantAsync(Permissions.InstancesOperate, "dashboard");
        var (_, view) = await Grains.RequireInstanceAsync(User, TenantId, InstanceId);
        if (!string.Equals(confirmName?.Trim(), view.Name, StringComparison.Ordinal))
        {
            Notice = $"Nothing was deleted: type the instance's name, {view.Name}, exactly to confirm.";
            TempData["NoticeKind"] = "error";
            return RedirectToPage();
        }

        return await ActAsync(
            async () =>
            {
                await InstanceEndpoints.RunVerbAsync(TenantId, InstanceId, OperationType.Delete, HttpContext, Grains, audit);
                return $"Deleting {view.Name}.";
            },
            () => RedirectToPage("/Tenants/Dashboard", new { tenantId = TenantId }));
    }

    public async Task<IActionResult> OnPostCancelAsync(string operationId)
    {
        await LoadTenantAsync(Permissions.InstancesOperate, "dashboard");
        return await ActAsync(
            async () =>
            {
                var operation = await OperationEndpoints.CancelOperationAsync(TenantId, operationId, HttpContext, Grains, audit);
                return $"Cancelling the {operation.Type.ToString().ToLowerInvariant()}: what it changed is being undone.";
            },
            () => RedirectToPage());
    }

    private async Task<IActionResult> RunAsync(OperationType verb, string doing)
    {
        await LoadTenantAsync(Permissions.InstancesOperate, "dashboard");
        return await ActAsync(
            async () =>
            {
                await InstanceEndpoints.RunVerbAsync(TenantId, InstanceId, verb, HttpContext, Grains, audit);
                return $"{doing} the instance.";
            },
            () => RedirectToPage());
    }

    private async Task LoadAsync(Permission permission)
    {
        await LoadTenantAsync(permission, "dashboard");
        var (grain, view) = await Grains.RequireInstanceAsync(User, TenantId, InstanceId);
        Status = await LiveStatus.DescribeAsync(grain, view);
        Sizes = CatalogEndpoints.Describe(catalog).Products.FirstOrDefault(p => p.Name == view.Product)?.Sizes ?? [];
        Events = (await grain.ListEventsAsync(PageRequest.First(20))).Items;
        if (May(Permissions.OperationsRead, TenantId))
        {
            Operations = (await grain.ListOperationsAsync(PageRequest.First(10))).Items;
        }

        if (May(Permissions.SlaRead, TenantId))
        {
            Sla = await reports.ForInstanceAsync(TenantId, InstanceId, SlaMonth.Of(billingClock.GetUtcNow()), HttpContext.RequestAborted);
        }
    }
}
