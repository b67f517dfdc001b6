using System.Security.Claims;
using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Errors;
using ControlPlane.Operations;
using ControlPlane.Security;
using Provisioner.Catalog;

namespace ControlPlane.Instances;

/// <param name="Tls">Serve TLS only, with a certificate from the platform CA (the catalog's <c>tls</c> says which products can).</param>
public sealed record CreateInstanceRequest(string? Name, string? Product, string? Version, string? Size, bool? Tls = null);

/// <summary>A scale (size), an upgrade (version), or both.</summary>
public sealed record UpdateInstanceRequest(string? Size, string? Version);

/// <summary>
/// The instance API. Every verb is declared once in <see cref="InstanceLifecycleTable.Verbs"/>: the ones without a shape
/// of their own are mapped from it as <c>POST …/{id}:{action}</c>, so a new verb needs no new endpoint.
/// </summary>
public static class InstanceEndpoints
{
    public static IEndpointRouteBuilder MapInstances(this IEndpointRouteBuilder app)
    {
        var instances = app.MapGroup("/api/v1/tenants/{tenantId}/instances").WithTags("Instances");
        instances.MapPost("", CreateAsync).Requires(Permissions.InstancesOperate).WithSummary(Summary(OperationType.Create)).Produces<OperationRecord>(202);
        instances.MapGet("", ListAsync).Requires(Permissions.InstancesRead).WithSummary("List the tenant's instances, oldest first (paged)");
        instances.MapGet("/{instanceId}", GetAsync).Requires(Permissions.InstancesRead).WithSummary("Get an instance");
        instances.MapPatch("/{instanceId}", UpdateAsync).Requires(Permissions.InstancesOperate).WithSummary(Summary(OperationType.Scale)).Produces<OperationRecord>(202);
        instances.MapDelete("/{instanceId}", async (string tenantId, string instanceId, HttpContext context, IGrainFactory grains, AuditLog audit) =>
            ApiResults.Accepted(await RunVerbAsync(tenantId, instanceId, OperationType.Delete, context, grains, audit)))
            .Requires(Permissions.InstancesOperate)
            .WithSummary(Summary(OperationType.Delete))
            .Produces<OperationRecord>(202);
        foreach (var verb in InstanceLifecycleTable.Verbs.Where(verb => verb.Action is not null))
        {
            instances.MapPost($"/{{instanceId}}:{verb.Action}", async (string tenantId, string instanceId, HttpContext context, IGrainFactory grains, AuditLog audit) =>
                ApiResults.Accepted(await RunVerbAsync(tenantId, instanceId, verb.Type, context, grains, audit)))
                .Requires(verb.Permission)
                .WithSummary(verb.Summary)
                .Produces<OperationRecord>(202);
        }

        instances.MapGet("/{instanceId}/credentials", GetCredentialsAsync)
            .Requires(Permissions.CredentialsRead)
            .WithSummary($"Connection credentials (every read is audited; SREs send {Access.AccessReasonHeader} with the reason, which the audit record keeps)");
        instances.MapGet("/{instanceId}/operations", ListOperationsAsync).Requires(Permissions.OperationsRead).WithSummary("The instance's operations, newest first (paged)");
        instances.MapGet("/{instanceId}/events", ListEventsAsync).Requires(Permissions.InstancesRead).WithSummary("What happened to the instance, newest first (paged)");
        return app;
    }

    private static async Task<IResult> CreateAsync(
        string tenantId, CreateInstanceRequest request, HttpContext context, IGrainFactory grains, ProductCatalog catalog, AuditLog audit) =>
        ApiResults.Accepted(await CreateInstanceAsync(tenantId, request, context, grains, catalog, audit));

    /// <summary>Creates an instance from the catalog as an operation, audited (the API and the portal both call it).</summary>
    public static async Task<OperationRecord> CreateInstanceAsync(
        string tenantId, CreateInstanceRequest request, HttpContext context, IGrainFactory grains, ProductCatalog catalog, AuditLog audit)
    {
        var tenant = await grains.RequireTenantAsync(context.User, tenantId);
        var resolved = catalog.TryResolve(request.Product, request.Version, request.Size, out var offering, out var errors);
        if (Names.InstanceNameError(request.Name) is { } nameError)
        {
            errors["name"] = [nameError];
        }

        if (resolved && request.Tls == true && !Catalog.CatalogEndpoints.OffersTls(offering.Definition))
        {
            errors["tls"] = [$"{offering.Definition.DisplayName} is not offered with TLS; leave tls out or false."];
        }

        RequestValidationException.ThrowIfAny(errors);
        var command = new InstanceCommand
        {
            Verb = OperationType.Create,
            RequestedBy = context.User.Actor(),
            Name = request.Name!,
            Product = offering.Product,
            Version = offering.Version,
            Size = offering.Size,
            Tls = request.Tls == true,
            Idempotency = Idempotency.FromRequest(context, request),
        };
        return await audit.AuditedAsync(
            context,
            tenantId,
            Verb(OperationType.Create).AuditAction,
            target: null,
            () => tenant.ExecuteAsync(command),
            created => new AuditOutcome(
                created.InstanceId,
                $"operation {created.Id}: {offering.Product} {offering.Version} {offering.Size}",
                new { name = request.Name, product = offering.Product, version = offering.Version, size = offering.Size, tls = request.Tls == true }));
    }

    private static async Task<ItemList<InstanceView>> ListAsync(
        string tenantId, [AsParameters] PageQuery query, ClaimsPrincipal user, IGrainFactory grains, bool includeDeleted = false)
    {
        var tenant = await grains.RequireTenantAsync(user, tenantId);
        var list = $"{tenantId}/instances{(includeDeleted ? "+deleted" : "")}";
        return query.Answer(list, await tenant.ListInstancesAsync(includeDeleted, query.For(list)));
    }

    private static async Task<InstanceView> GetAsync(string tenantId, string instanceId, ClaimsPrincipal user, IGrainFactory grains) =>
        (await grains.RequireInstanceAsync(user, tenantId, instanceId)).View;

    private static async Task<IResult> UpdateAsync(
        string tenantId, string instanceId, UpdateInstanceRequest request, HttpContext context, IGrainFactory grains, ProductCatalog catalog, AuditLog audit) =>
        ApiResults.Accepted(await UpdateInstanceAsync(tenantId, instanceId, request, context, grains, catalog, audit));

    /// <summary>Scales or upgrades an instance as an operation, audited (the API and the portal both call it).</summary>
    public static async Task<OperationRecord> UpdateInstanceAsync(
        string tenantId, string instanceId, UpdateInstanceRequest request, HttpContext context, IGrainFactory grains, ProductCatalog catalog, AuditLog audit)
    {
        var (_, view) = await grains.RequireInstanceAsync(context.User, tenantId, instanceId);
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

        var command = new InstanceCommand
        {
            Verb = offering.Version != view.Version ? OperationType.Upgrade : OperationType.Scale,
            RequestedBy = context.User.Actor(),
            Version = offering.Version != view.Version ? offering.Version : null,
            Size = offering.Size != view.Size ? offering.Size : null,
        };
        return await RunVerbAsync(
            tenantId,
            instanceId,
            command,
            request,
            context,
            grains,
            audit,
            before: new { size = view.Size, version = view.Version },
            after: new { size = offering.Size, version = offering.Version });
    }

    /// <summary>Runs a verb (stop, start, delete, …) on an existing instance as an operation, audited either way.</summary>
    public static Task<OperationRecord> RunVerbAsync(string tenantId, string instanceId, OperationType verb, HttpContext context, IGrainFactory grains, AuditLog audit) =>
        RunVerbAsync(tenantId, instanceId, new InstanceCommand { Verb = verb, RequestedBy = context.User.Actor() }, body: null, context, grains, audit);

    private static async Task<OperationRecord> RunVerbAsync(
        string tenantId,
        string instanceId,
        InstanceCommand command,
        object? body,
        HttpContext context,
        IGrainFactory grains,
        AuditLog audit,
        object? before = null,
        object? after = null)
    {
        var tenant = await grains.RequireTenantAsync(context.User, tenantId);
        if (body is null)
        {
            var (_, view) = await grains.RequireInstanceAsync(context.User, tenantId, instanceId);
            before ??= new { state = view.State.ToString() };
        }

        command = command with { InstanceId = instanceId, Idempotency = Idempotency.FromRequest(context, body) };
        return await audit.AuditedAsync(
            context,
            tenantId,
            Verb(command.Verb).AuditAction,
            instanceId,
            () => tenant.ExecuteAsync(command),
            accepted => new AuditOutcome(Details: $"operation {accepted.Id}", After: after),
            before: before);
    }

    private static async Task<IResult> GetCredentialsAsync(string tenantId, string instanceId, HttpContext context, IGrainFactory grains, AuditLog audit) =>
        TypedResults.Ok(await ReadCredentialsAsync(tenantId, instanceId, context, grains, audit));

    /// <summary>An instance's credentials, the read audited and the answer marked never to be cached (the API and the portal both call it).</summary>
    public static async Task<InstanceCredentials> ReadCredentialsAsync(string tenantId, string instanceId, HttpContext context, IGrainFactory grains, AuditLog audit)
    {
        var (grain, _) = await grains.RequireInstanceAsync(context.User, tenantId, instanceId);
        var reason = AccessReason(context, tenantId);
        var credentials = await audit.AuditedAsync(
            context, tenantId, "instance.credentials.read", instanceId, grain.GetCredentialsAsync, _ => new AuditOutcome(Details: reason is null ? null : $"Reason: {reason}"), outcome: "succeeded");
        // Never kept by a browser, a proxy or a client's HTTP cache.
        context.Response.Headers.CacheControl = "no-store";
        return credentials;
    }

    /// <summary>The reason an operator gives for reading a customer's credentials; required of platform roles that must give one.</summary>
    private static string? AccessReason(HttpContext context, string tenantId)
    {
        var reason = context.Request.Headers[Access.AccessReasonHeader].ToString().Trim();
        if (!context.User.NeedsRecordedReason(tenantId))
        {
            return reason.Length == 0 ? null : reason;
        }

        return reason.Length is >= 10 and <= 500
            ? reason
            : throw new ControlPlaneException(
                ProblemKind.Forbidden,
                "access-reason-required",
                "A reason is required",
                $"Reading a customer's credentials as an SRE needs a reason of 10–500 characters in the {Access.AccessReasonHeader} header " +
                "(a ticket or incident and why); it is kept in the tenant's audit log.");
    }

    private static async Task<ItemList<OperationRecord>> ListOperationsAsync(
        string tenantId, string instanceId, [AsParameters] PageQuery query, ClaimsPrincipal user, IGrainFactory grains)
    {
        var (grain, _) = await grains.RequireInstanceAsync(user, tenantId, instanceId);
        var list = $"{instanceId}/operations";
        return query.Answer(list, await grain.ListOperationsAsync(query.For(list)));
    }

    private static async Task<ItemList<InstanceEvent>> ListEventsAsync(
        string tenantId, string instanceId, [AsParameters] PageQuery query, ClaimsPrincipal user, IGrainFactory grains)
    {
        var (grain, _) = await grains.RequireInstanceAsync(user, tenantId, instanceId);
        var list = $"{instanceId}/events";
        return query.Answer(list, await grain.ListEventsAsync(query.For(list)));
    }

    private static InstanceVerb Verb(OperationType type) => InstanceLifecycleTable.Verb(type);

    private static string Summary(OperationType type) => Verb(type).Summary;
}
