using System.Security.Claims;
using Billing;
using Billing.Sla;
using Billing.Usage;
using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Errors;
using ControlPlane.Instances;
using ControlPlane.Security;
using ControlPlane.Tenants;
using Microsoft.Extensions.Options;

namespace ControlPlane.Sla;

/// <summary>
/// An SRE announces maintenance for one instance (<see cref="InstanceId"/>) or every instance of the tenant; <see cref="Kind"/>
/// is <c>planned</c> (the default: announced ahead, excused from the SLA) or <c>emergency</c> (at once, counted against it).
/// </summary>
public sealed record AnnounceMaintenanceRequest(DateTimeOffset? StartsAt, DateTimeOffset? EndsAt, string? Reason, string? InstanceId, string? Kind = null);

/// <summary>
/// The SLA as customers, SREs and finance see it: per instance and per tenant for a month (<c>?month=yyyy-MM</c>,
/// default the current one), announced maintenance, and closed months' immutable assessments.
/// </summary>
public static class SlaEndpoints
{
    public static IEndpointRouteBuilder MapSla(this IEndpointRouteBuilder app)
    {
        var tenant = app.MapGroup("/api/v1/tenants/{tenantId}").WithTags("SLA");
        tenant.MapGet("/instances/{instanceId}/sla", GetInstanceSlaAsync)
            .Requires(Permissions.SlaRead)
            .WithSummary("An instance's SLA for a month")
            .WithDescription(
                "Eligible minutes are good, bad or unmeasured (no probe: the control plane was down). Unmeasured minutes are proven when the "
                + "instance's process demonstrably ran throughout (the same run_id, its uptime spanning the gap), unproven otherwise, or pending "
                + "while no probe has ended the gap in an open month. Uptime is (good + proven) / (eligible - pending).");
        tenant.MapGet("/sla", GetTenantSlaAsync).Requires(Permissions.SlaRead).WithSummary("The tenant's SLA for a month, per instance");
        tenant.MapGet("/usage", GetTenantUsageAsync)
            .Requires(Permissions.UsageRead)
            .WithSummary("The tenant's usage for a month (default: this one), per instance and meter, with its estimated charge and SLA credit so far");
        tenant.MapGet("/sla/assessments", ListTenantAssessmentsAsync).Requires(Permissions.SlaRead).WithSummary("The tenant's assessments of a closed month (default: the last one)");
        tenant.MapGet("/maintenance-windows", ListMaintenanceAsync).Requires(Permissions.SlaRead).WithSummary("Maintenance announced for a month");
        tenant.MapPost("/maintenance-windows", AnnounceMaintenanceAsync)
            .Requires(Permissions.MaintenanceManage)
            .WithSummary("Announce maintenance (platform admins, SREs): planned, its minutes do not count against the SLA; emergency, they do")
            .Produces<MaintenanceWindow>(201);
        tenant.MapDelete("/maintenance-windows/{windowId}", WithdrawMaintenanceAsync)
            .Requires(Permissions.MaintenanceManage)
            .WithSummary("Withdraw announced maintenance (platform admins, SREs; audited): it no longer excuses any minute");

        var platform = app.MapGroup("/api/v1/sla").WithTags("SLA");
        platform.MapPost("/months/{month}:close", CloseMonthAsync)
            .Requires(Permissions.SlaClose)
            .WithSummary("Close an ended month now (platform admins, finance); closing again answers the same assessments");
        platform.MapGet("/assessments", ListAssessmentsAsync)
            .Requires(Permissions.SlaAssessmentsRead)
            .WithSummary("Every assessment of a closed month (platform admins, finance)");
        return app;
    }

    private static async Task<InstanceSlaReport> GetInstanceSlaAsync(
        string tenantId, string instanceId, string? month, ClaimsPrincipal user, IGrainFactory grains, SlaReports reports, [FromKeyedServices(BillingClock.Key)] TimeProvider clock)
    {
        await grains.RequireInstanceAsync(user, tenantId, instanceId);
        return await reports.ForInstanceAsync(tenantId, instanceId, MonthOrCurrent(month, clock))
            ?? throw Problems.NotFound("SLA record of instance", instanceId);
    }

    private static async Task<TenantSlaReport> GetTenantSlaAsync(
        string tenantId, string? month, ClaimsPrincipal user, IGrainFactory grains, SlaReports reports, [FromKeyedServices(BillingClock.Key)] TimeProvider clock)
    {
        await grains.RequireTenantAsync(user, tenantId);
        return await reports.ForTenantAsync(tenantId, MonthOrCurrent(month, clock));
    }

    private static async Task<TenantUsageReport> GetTenantUsageAsync(
        string tenantId, string? month, ClaimsPrincipal user, IGrainFactory grains, TenantUsage usage, [FromKeyedServices(BillingClock.Key)] TimeProvider clock)
    {
        await grains.RequireTenantAsync(user, tenantId);
        return await usage.ForTenantAsync(tenantId, MonthOrCurrent(month, clock));
    }

    private static async Task<ItemList<SlaAssessment>> ListTenantAssessmentsAsync(
        string tenantId, string? month, [AsParameters] PageQuery query, ClaimsPrincipal user, IGrainFactory grains, SlaAssessments assessments,
        [FromKeyedServices(BillingClock.Key)] TimeProvider clock)
    {
        await grains.RequireTenantAsync(user, tenantId);
        var period = MonthOrLast(month, clock);
        var list = $"{tenantId}/sla/assessments/{period}";
        return query.Answer(list, Paging.Page(await assessments.ListAsync(period, tenantId), a => a.Id, descending: false, query.For(list)));
    }

    private static async Task<ItemList<SlaAssessment>> ListAssessmentsAsync(
        string? month, [AsParameters] PageQuery query, SlaAssessments assessments, [FromKeyedServices(BillingClock.Key)] TimeProvider clock)
    {
        var period = MonthOrLast(month, clock);
        var list = $"sla/assessments/{period}";
        return query.Answer(list, Paging.Page(await assessments.ListAsync(period, tenantId: null), a => a.Id, descending: false, query.For(list)));
    }

    private static async Task<ItemList<MaintenanceWindow>> ListMaintenanceAsync(
        string tenantId, string? month, [AsParameters] PageQuery query, ClaimsPrincipal user, IGrainFactory grains, MaintenanceWindows windows,
        [FromKeyedServices(BillingClock.Key)] TimeProvider clock)
    {
        await grains.RequireTenantAsync(user, tenantId);
        var period = MonthOrCurrent(month, clock);
        var list = $"{tenantId}/maintenance-windows/{period}";
        var windowsOfMonth = (await windows.ListAsync(tenantId, instanceId: null, period.Start, period.End)).OrderBy(w => w.StartsAt).ThenBy(w => w.Id, StringComparer.Ordinal);
        return query.Answer(list, Paging.Page(windowsOfMonth, w => Paging.Key(w.StartsAt, w.Id), descending: false, query.For(list)));
    }

    private static async Task<IResult> AnnounceMaintenanceAsync(
        string tenantId,
        AnnounceMaintenanceRequest request,
        HttpContext context,
        IGrainFactory grains,
        AuditLog audit,
        MaintenanceWindows windows,
        IOptions<SlaOptions> options,
        [FromKeyedServices(BillingClock.Key)] TimeProvider clock)
    {
        await grains.RequireTenantAsync(context.User, tenantId);
        var now = clock.GetUtcNow();
        var kind = request.Kind?.ToLowerInvariant() switch
        {
            null or "planned" => MaintenanceKind.Planned,
            "emergency" => MaintenanceKind.Emergency,
            _ => (MaintenanceKind?)null,
        };
        var errors = MaintenanceWindows.Validate(request.StartsAt, request.EndsAt, request.Reason, kind ?? MaintenanceKind.Planned, now, options.Value);
        if (kind is null)
        {
            errors["kind"] = ["kind must be \"planned\" (announced ahead; its minutes do not count against the SLA) or \"emergency\" (at once; they do)."];
        }

        if (request.InstanceId is { } instanceId
            && (!Ids.IsWellFormed(instanceId, "ins") || (await grains.GetGrain<IInstanceGrain>(instanceId).GetAsync())?.TenantId != tenantId))
        {
            errors["instanceId"] = [$"This tenant has no instance '{instanceId}'. Leave instanceId out to announce maintenance for all its instances."];
        }

        RequestValidationException.ThrowIfAny(errors);
        var window = new MaintenanceWindow
        {
            Id = Ids.NewMaintenanceWindowId(),
            TenantId = tenantId,
            InstanceId = request.InstanceId,
            StartsAt = request.StartsAt!.Value.ToUniversalTime(),
            EndsAt = request.EndsAt!.Value.ToUniversalTime(),
            Reason = request.Reason!,
            AnnouncedBy = context.User.Actor(),
            AnnouncedAt = now,
            Kind = kind!.Value,
        };
        var month = SlaMonth.Of(window.StartsAt);
        // Not the request's cancellation: once a mutating request is under way it runs to its end and its outcome is recorded.
        var existing = await windows.ListAsync(
            tenantId, instanceId: null, Earlier(month.Start, window.StartsAt), Later(month.End, window.EndsAt), CancellationToken.None);
        if (MaintenanceWindows.PolicyRefusal(window, existing, options.Value.MaxMaintenancePerMonth) is { } refusal)
        {
            throw refusal.Conflict
                ? new ControlPlaneException(ProblemKind.Conflict, "maintenance-overlaps", "The window overlaps announced maintenance", refusal.Detail)
                : new RequestValidationException(new Dictionary<string, string[]> { ["endsAt"] = [refusal.Detail] });
        }

        await audit.AuditedAsync(
            context,
            tenantId,
            "maintenance.announce",
            request.InstanceId,
            async () =>
            {
                await windows.AnnounceAsync(window, CancellationToken.None);
                return window;
            },
            announced => new AuditOutcome(announced.Id, $"{announced.Kind} maintenance of {announced.InstanceId ?? "all instances"}", announced));
        return TypedResults.Created($"/api/v1/tenants/{tenantId}/maintenance-windows?month={SlaMonth.Of(window.StartsAt)}", window);
    }

    private static async Task<MaintenanceWindow> WithdrawMaintenanceAsync(
        string tenantId, string windowId, HttpContext context, IGrainFactory grains, AuditLog audit, MaintenanceWindows windows,
        [FromKeyedServices(BillingClock.Key)] TimeProvider clock)
    {
        await grains.RequireTenantAsync(context.User, tenantId);
        return await audit.AuditedAsync(
            context,
            tenantId,
            "maintenance.withdraw",
            windowId,
            async () => await windows.WithdrawAsync(tenantId, windowId, context.User.Actor(), clock.GetUtcNow(), CancellationToken.None)
                ?? throw Problems.NotFound("maintenance window", windowId),
            withdrawn => new AuditOutcome(withdrawn.Id, $"{withdrawn.Kind} maintenance of {withdrawn.InstanceId ?? "all instances"}", withdrawn));
    }

    private static DateTimeOffset Earlier(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    private static DateTimeOffset Later(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    private static async Task<ItemList<SlaAssessment>> CloseMonthAsync(string month, HttpContext context, SlaMonthClose close, AuditLog audit)
    {
        var period = ParseMonth(month);
        if (!close.HasEnded(period))
        {
            throw new ControlPlaneException(
                ProblemKind.Conflict,
                "month-not-ended",
                "The month has not ended",
                $"Month {period} ends at {period.End:O}; close it after that.");
        }

        var closed = await audit.AuditedAsync(
            context,
            tenantId: null,
            "sla.month.close",
            period.ToString(),
            () => close.CloseAsync(period, CancellationToken.None),
            assessments => new AuditOutcome(Details: $"{assessments.Count} assessment(s)"));
        return new ItemList<SlaAssessment>(closed);
    }

    private static SlaMonth MonthOrCurrent(string? month, TimeProvider clock) => month is null ? SlaMonth.Of(clock.GetUtcNow()) : NotInFuture(ParseMonth(month), clock);

    private static SlaMonth MonthOrLast(string? month, TimeProvider clock) => month is null ? SlaMonth.Of(clock.GetUtcNow()).Previous : NotInFuture(ParseMonth(month), clock);

    private static SlaMonth NotInFuture(SlaMonth month, TimeProvider clock) =>
        month.Start <= clock.GetUtcNow()
            ? month
            : throw new RequestValidationException(new Dictionary<string, string[]> { ["month"] = [$"Month {month} has not begun; nothing is measured yet."] });

    private static SlaMonth ParseMonth(string month) =>
        SlaMonth.TryParse(month, out var parsed)
            ? parsed
            : throw new RequestValidationException(new Dictionary<string, string[]> { ["month"] = ["month must be a month as yyyy-MM from 2000-01 on, e.g. 2026-11."] });
}
