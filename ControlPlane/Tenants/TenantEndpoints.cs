using System.Security.Claims;
using Billing.Stripe;
using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Errors;
using ControlPlane.Security;
using Microsoft.Extensions.Options;

namespace ControlPlane.Tenants;

public sealed record CreateTenantRequest(string? Name, string? Plan);

public sealed record ChangePlanRequest(string? Plan);

public static class TenantEndpoints
{
    public static IEndpointRouteBuilder MapTenants(this IEndpointRouteBuilder app)
    {
        var tenants = app.MapGroup("/api/v1/tenants").WithTags("Tenants");
        tenants.MapPost("", CreateTenantAsync)
            .Requires(Permissions.TenantsCreate)
            .WithSummary("Create a tenant (platform admins)");
        tenants.MapGet("", ListTenantsAsync)
            .ForAnyAuthenticatedCaller()
            .WithSummary("List tenants: every tenant for platform roles that list tenants, otherwise the caller's own (paged)");
        tenants.MapGet("/{tenantId}", GetTenantAsync).Requires(Permissions.TenantRead).WithSummary("Get a tenant");
        tenants.MapPost("/{tenantId}:changePlan", ChangePlanAsync)
            .Requires(Permissions.TenantManage)
            .WithSummary("Move the tenant to another plan from now on (audited); billing prices each minute under the plan then in force");
        return app;
    }

    private static async Task<IResult> CreateTenantAsync(
        CreateTenantRequest request, HttpContext context, IGrainFactory grains, IOptions<PlanOptions> plans, AuditLog audit, StripeCustomers stripeCustomers)
    {
        var tenant = await CreateAsync(request, context, grains, plans, audit, stripeCustomers);
        return TypedResults.Created($"/api/v1/tenants/{tenant.Id}", tenant);
    }

    /// <summary>Creates a tenant (validated, idempotent, audited) and asks billing for its Stripe customer (API and portal).</summary>
    public static async Task<TenantView> CreateAsync(
        CreateTenantRequest request, HttpContext context, IGrainFactory grains, IOptions<PlanOptions> plans, AuditLog audit, StripeCustomers stripeCustomers)
    {
        var errors = new Dictionary<string, string[]>();
        if (Names.TenantNameError(request.Name) is { } nameError)
        {
            errors["name"] = [nameError];
        }

        var plan = request.Plan ?? plans.Value.DefaultPlan;
        if (plans.Value.UnknownPlanError(plan) is { } planError)
        {
            errors["plan"] = [planError];
        }

        RequestValidationException.ThrowIfAny(errors);
        var command = new CreateTenantCommand
        {
            Name = request.Name!,
            Plan = plan,
            RequestedBy = context.User.Actor(),
            Idempotency = Idempotency.FromRequest(context, request),
        };
        return await audit.AuditedAsync(
            context,
            tenantId: null,
            "tenant.create",
            target: null,
            async () =>
            {
                var created = await grains.GetGrain<ITenantDirectoryGrain>(0).CreateTenantAsync(command);
                // Onboarding asks billing for the tenant's Stripe customer; a replayed create asks again, which is harmless.
                // Part of the mutation, so a client that disconnects does not stop it halfway.
                await stripeCustomers.RequestAsync(created.Id, created.Name, CancellationToken.None);
                return created;
            },
            created => new AuditOutcome(created.Id, $"plan {created.Plan}", new { name = created.Name, plan = created.Plan }));
    }

    private static async Task<PlanChangeResult> ChangePlanAsync(
        string tenantId, ChangePlanRequest request, HttpContext context, IGrainFactory grains, IOptions<PlanOptions> plans, AuditLog audit)
    {
        var tenant = await grains.RequireTenantAsync(context.User, tenantId);
        var planError = request.Plan is null ? "plan is required: the plan to move the tenant to." : plans.Value.UnknownPlanError(request.Plan);
        if (planError is not null)
        {
            throw new RequestValidationException(new Dictionary<string, string[]> { ["plan"] = [planError] });
        }

        var command = new ChangePlanCommand
        {
            Plan = request.Plan!,
            RequestedBy = context.User.Actor(),
            Idempotency = Idempotency.FromRequest(context, request),
        };
        var current = await tenant.GetAsync() ?? throw Problems.NotFound("tenant", tenantId);
        return await audit.AuditedAsync(
            context,
            tenantId,
            "tenant.plan.change",
            tenantId,
            () => tenant.ChangePlanAsync(command),
            result => new AuditOutcome(
                Details: result.Changed ? $"plan {result.PreviousPlan} -> {result.Plan} at {result.PlanSince:O}" : $"plan {result.Plan} unchanged",
                After: new { plan = result.Plan, planSince = result.PlanSince }),
            outcome: "succeeded",
            before: new { plan = current.Plan, planSince = current.PlanSince });
    }

    private static async Task<ItemList<TenantView>> ListTenantsAsync([AsParameters] PageQuery query, ClaimsPrincipal user, IGrainFactory grains)
    {
        const string list = "tenants";
        var ids = user.Allows(Permissions.TenantsList)
            ? await grains.GetGrain<ITenantDirectoryGrain>(0).ListTenantIdsAsync(query.For(list))
            : Paging.Page(user.Memberships().Select(membership => membership.TenantId).Order(StringComparer.Ordinal), id => id, descending: false, query.For(list));
        var views = await Task.WhenAll(ids.Items.Select(id => grains.GetGrain<ITenantGrain>(id).GetAsync()));
        return query.Answer(list, new Page<TenantView> { Items = [.. views.OfType<TenantView>()], NextAfter = ids.NextAfter });
    }

    private static async Task<TenantView> GetTenantAsync(string tenantId, ClaimsPrincipal user, IGrainFactory grains) =>
        await (await grains.RequireTenantAsync(user, tenantId)).GetAsync() ?? throw Problems.NotFound("tenant", tenantId);
}
