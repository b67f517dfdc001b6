using System.Security.Claims;
using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Errors;
using ControlPlane.Operations;
using ControlPlane.Security;
using ControlPlane.Tenants;
using Microsoft.Extensions.Options;
using Provisioner.Catalog;

namespace ControlPlane.Instances;

public sealed record CreateInstanceRequest(string? Name, string? Product, string? Version, string? Size);

/// <summary>A scale (size), an upgrade (version), or both.</summary>
public sealed record UpdateInstanceRequest(string? Size, string? Version);

public static class InstanceEndpoints
{
    public static IEndpointRouteBuilder MapInstances(this IEndpointRouteBuilder app)
    {
        var instances = app.MapGroup("/api/v1/tenants/{tenantId}/instances").WithTags("Instances");
        instances.MapPost("", CreateAsync).WithSummary("Create an instance").Produces<OperationRecord>(202);
        instances.MapGet("", ListAsync).WithSummary("List the tenant's instances");
        instances.MapGet("/{instanceId}", GetAsync).WithSummary("Get an instance");
        instances.MapPatch("/{instanceId}", UpdateAsync).WithSummary("Scale (size) or upgrade (version) an instance").Produces<OperationRecord>(202);
        instances.MapPost("/{instanceId}:stop", Mutation(InstanceMutationKind.Stop, "instance.stop")).WithSummary("Stop an instance").Produces<OperationRecord>(202);
        instances.MapPost("/{instanceId}:start", Mutation(InstanceMutationKind.Start, "instance.start")).WithSummary("Start a stopped instance").Produces<OperationRecord>(202);
        instances.MapDelete("/{instanceId}", Mutation(InstanceMutationKind.Delete, "instance.delete")).WithSummary("Delete an instance and its data").Produces<OperationRecord>(202);
        instances.MapGet("/{instanceId}/credentials", GetCredentialsAsync).WithSummary("Connection credentials (every read is audited)");
        instances.MapGet("/{instanceId}/operations", ListOperationsAsync).WithSummary("The instance's operations, newest first");
        instances.MapGet("/{instanceId}/events", ListEventsAsync).WithSummary("What happened to the instance, newest first");
        return app;
    }

    private static async Task<IResult> CreateAsync(
        string tenantId,
        CreateInstanceRequest request,
        HttpContext context,
        IGrainFactory grains,
        ProductCatalog catalog,
        IOptions<InstanceOptions> options)
    {
        await grains.RequireTenantAsync(context.User, tenantId);
        catalog.TryResolve(request.Product, request.Version, request.Size, out var offering, out var errors);
        if (Names.InstanceNameError(request.Name) is { } nameError)
        {
            errors["name"] = [nameError];
        }

        RequestValidationException.ThrowIfAny(errors);
        var command = new NewInstanceCommand
        {
            Name = request.Name!,
            Product = offering.Product,
            Version = offering.Version,
            Size = offering.Size,
            Backend = options.Value.DefaultBackend,
            RequestedBy = context.User.Actor(),
            Idempotency = Idempotency.FromRequest(context, request),
        };
        var operation = await ApiResults.AuditedAsync(
            context,
            tenantId,
            "instance.create",
            target: null,
            () => grains.GetGrain<ITenantGrain>(tenantId).CreateInstanceAsync(command),
            created => (created.InstanceId, $"operation {created.Id}: {offering.Product} {offering.Version} {offering.Size}"));
        return ApiResults.Accepted(operation);
    }

    private static async Task<ItemList<InstanceView>> ListAsync(string tenantId, ClaimsPrincipal user, IGrainFactory grains, bool includeDeleted = false)
    {
        await grains.RequireTenantAsync(user, tenantId);
        return new ItemList<InstanceView>(await grains.GetGrain<ITenantGrain>(tenantId).ListInstancesAsync(includeDeleted));
    }

    private static async Task<InstanceView> GetAsync(string tenantId, string instanceId, ClaimsPrincipal user, IGrainFactory grains)
    {
        var (_, view) = await RequireInstanceAsync(grains, user, tenantId, instanceId);
        return view;
    }

    private static async Task<IResult> UpdateAsync(
        string tenantId,
        string instanceId,
        UpdateInstanceRequest request,
        HttpContext context,
        IGrainFactory grains,
        ProductCatalog catalog)
    {
        var (_, view) = await RequireInstanceAsync(grains, context.User, tenantId, instanceId);
        if (request.Size is null && request.Version is null)
        {
            throw new RequestValidationException(new Dictionary<string, string[]>
            {
                [""] = ["Give a new 'size' (scale), a new 'version' (upgrade), or both."],
            });
        }

        if (!catalog.TryResolve(view.Product, request.Version ?? view.Version, request.Size ?? view.Size, out var offering, out var errors))
        {
            throw new RequestValidationException(errors);
        }

        return await MutateAsync(tenantId, instanceId, InstanceMutationKind.ChangeSpec, "instance.update", context, grains, request, offering);
    }

    /// <summary>A body-less mutation (stop, start, delete) as an endpoint.</summary>
    private static Func<string, string, HttpContext, IGrainFactory, Task<IResult>> Mutation(InstanceMutationKind kind, string action) =>
        (tenantId, instanceId, context, grains) => MutateAsync(tenantId, instanceId, kind, action, context, grains);

    private static async Task<IResult> MutateAsync(
        string tenantId,
        string instanceId,
        InstanceMutationKind kind,
        string action,
        HttpContext context,
        IGrainFactory grains,
        UpdateInstanceRequest? body = null,
        CatalogOffering? offering = null)
    {
        if (offering is null)
        {
            await RequireInstanceAsync(grains, context.User, tenantId, instanceId);
        }

        var command = new InstanceMutationCommand
        {
            InstanceId = instanceId,
            Kind = kind,
            RequestedBy = context.User.Actor(),
            Version = offering?.Version,
            Size = offering?.Size,
            Idempotency = Idempotency.FromRequest(context, body),
        };
        var operation = await ApiResults.AuditedAsync(
            context,
            tenantId,
            action,
            instanceId,
            () => grains.GetGrain<ITenantGrain>(tenantId).MutateInstanceAsync(command),
            accepted => (null, $"operation {accepted.Id}"));
        return ApiResults.Accepted(operation);
    }

    private static async Task<InstanceCredentials> GetCredentialsAsync(
        string tenantId,
        string instanceId,
        HttpContext context,
        IGrainFactory grains,
        AuditLog audit)
    {
        var (grain, _) = await RequireInstanceAsync(grains, context.User, tenantId, instanceId);
        try
        {
            var credentials = await grain.GetCredentialsAsync();
            await audit.RecordAsync(new AuditEntry(context.User.Actor(), tenantId, "instance.credentials.read", instanceId, "succeeded"), context.RequestAborted);
            return credentials;
        }
        catch (ControlPlaneException refused)
        {
            await audit.RecordAsync(new AuditEntry(context.User.Actor(), tenantId, "instance.credentials.read", instanceId, $"rejected:{refused.Type}"), CancellationToken.None);
            throw;
        }
    }

    private static async Task<ItemList<OperationRecord>> ListOperationsAsync(string tenantId, string instanceId, ClaimsPrincipal user, IGrainFactory grains)
    {
        var (grain, _) = await RequireInstanceAsync(grains, user, tenantId, instanceId);
        return new ItemList<OperationRecord>(await grain.GetOperationsAsync());
    }

    private static async Task<ItemList<InstanceEvent>> ListEventsAsync(string tenantId, string instanceId, ClaimsPrincipal user, IGrainFactory grains)
    {
        var (grain, _) = await RequireInstanceAsync(grains, user, tenantId, instanceId);
        return new ItemList<InstanceEvent>(await grain.GetEventsAsync());
    }

    /// <summary>An instance of this tenant that the caller may see; any other instance id is a 404, whoever owns it.</summary>
    internal static async Task<(IInstanceGrain Grain, InstanceView View)> RequireInstanceAsync(
        IGrainFactory grains,
        ClaimsPrincipal user,
        string tenantId,
        string instanceId)
    {
        await grains.RequireTenantAsync(user, tenantId);
        if (!Ids.IsWellFormed(instanceId, "ins"))
        {
            throw Problems.NotFound("instance", instanceId);
        }

        var grain = grains.GetGrain<IInstanceGrain>(instanceId);
        var view = await grain.GetAsync();
        return view is not null && view.TenantId == tenantId ? (grain, view) : throw Problems.NotFound("instance", instanceId);
    }
}

/// <summary>Section <c>Instances</c>.</summary>
public sealed class InstanceOptions
{
    public const string SectionName = "Instances";

    /// <summary>Where new instances are deployed: <c>local</c> (OS processes) unless configured otherwise.</summary>
    public string DefaultBackend { get; set; } = "local";
}
