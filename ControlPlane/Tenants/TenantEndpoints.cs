using System.Security.Claims;
using Billing.Stripe;
using ControlPlane.Api;
using ControlPlane.Errors;
using ControlPlane.Security;
using Microsoft.Extensions.Options;

namespace ControlPlane.Tenants;

public sealed record CreateTenantRequest(string? Name, string? Plan);

public static class TenantEndpoints
{
    public static IEndpointRouteBuilder MapTenants(this IEndpointRouteBuilder app)
    {
        var tenants = app.MapGroup("/api/v1/tenants").WithTags("Tenants");
        tenants.MapPost("", CreateTenantAsync)
            .RequireAuthorization(policy => policy.RequireRole(Roles.PlatformAdmin))
            .WithSummary("Create a tenant (platform admins)");
        tenants.MapGet("", ListTenantsAsync)
            .RequireAuthorization(policy => policy.RequireRole(Roles.PlatformAdmin))
            .WithSummary("List all tenants (platform admins)");
        tenants.MapGet("/{tenantId}", GetTenantAsync).WithSummary("Get a tenant");
        return app;
    }

    /// <summary>Checks that the tenant exists and the caller may see it; a missing tenant and another tenant's alike answer 404.</summary>
    public static async Task RequireTenantAsync(this IGrainFactory grains, ClaimsPrincipal user, string tenantId)
    {
        user.EnsureCanAccessTenant(tenantId);
        if (!Ids.IsWellFormed(tenantId, "tnt") || !await grains.GetGrain<ITenantGrain>(tenantId).ExistsAsync())
        {
            throw Problems.NotFound("tenant", tenantId);
        }
    }

    private static async Task<IResult> CreateTenantAsync(CreateTenantRequest request, HttpContext context, IGrainFactory grains, IOptions<PlanOptions> plans)
    {
        var errors = new Dictionary<string, string[]>();
        if (Names.TenantNameError(request.Name) is { } nameError)
        {
            errors["name"] = [nameError];
        }

        var plan = request.Plan ?? plans.Value.DefaultPlan;
        if (!plans.Value.Definitions.ContainsKey(plan))
        {
            errors["plan"] = [$"Unknown plan '{plan}'. Available: {string.Join(", ", plans.Value.Definitions.Keys.Order(StringComparer.Ordinal))}."];
        }

        RequestValidationException.ThrowIfAny(errors);
        var command = new CreateTenantCommand
        {
            Name = request.Name!,
            Plan = plan,
            RequestedBy = context.User.Actor(),
            Idempotency = Idempotency.FromRequest(context, request),
        };
        var tenant = await ApiResults.AuditedAsync(
            context,
            tenantId: null,
            "tenant.create",
            target: null,
            () => grains.GetGrain<ITenantDirectoryGrain>(0).CreateTenantAsync(command),
            created => (created.Id, $"plan {created.Plan}"));
        // Onboarding asks billing for the tenant's Stripe customer; a replayed create asks again, which is harmless.
        await context.RequestServices.GetRequiredService<StripeCustomers>().RequestAsync(tenant.Id, tenant.Name, context.RequestAborted);
        return TypedResults.Created($"/api/v1/tenants/{tenant.Id}", tenant);
    }

    private static async Task<ItemList<TenantView>> ListTenantsAsync(IGrainFactory grains)
    {
        var ids = await grains.GetGrain<ITenantDirectoryGrain>(0).ListTenantIdsAsync();
        var views = await Task.WhenAll(ids.Select(id => grains.GetGrain<ITenantGrain>(id).GetAsync()));
        return new ItemList<TenantView>([.. views.OfType<TenantView>()]);
    }

    private static async Task<TenantView> GetTenantAsync(string tenantId, ClaimsPrincipal user, IGrainFactory grains)
    {
        await grains.RequireTenantAsync(user, tenantId);
        return await grains.GetGrain<ITenantGrain>(tenantId).GetAsync() ?? throw Problems.NotFound("tenant", tenantId);
    }
}
