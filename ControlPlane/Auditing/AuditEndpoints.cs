using System.ComponentModel;
using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using Billing;
using ControlPlane.Api;
using ControlPlane.Security;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace ControlPlane.Auditing;

/// <summary>The filters of every audit read and export; each optional.</summary>
public sealed record AuditQuery(
    [property: FromQuery(Name = "action"), Description("Exactly this action, e.g. instance.create.")] string? Action,
    [property: FromQuery(Name = "actor"), Description("This actor, or this API key (apikey:key_…).")] string? Actor,
    [property: FromQuery(Name = "target"), Description("Exactly this target, e.g. an instance id.")] string? Target,
    [property: FromQuery(Name = "outcome"), Description("This outcome, or its class: accepted, succeeded, rejected, failed, unknown.")] string? Outcome,
    [property: FromQuery(Name = "since"), Description("From this time on (ISO 8601, inclusive).")] string? Since,
    [property: FromQuery(Name = "until"), Description("Before this time (ISO 8601, exclusive).")] string? Until)
{
    private const int MaxLength = 256;

    public AuditFilter For(string? tenantId)
    {
        var errors = new Dictionary<string, string[]>();
        foreach (var (name, value) in new[] { ("action", Action), ("actor", Actor), ("target", Target), ("outcome", Outcome) })
        {
            if (value is { Length: 0 or > MaxLength })
            {
                errors[name] = [$"{name} must be 1 to {MaxLength} characters, or left out."];
            }
        }

        var since = QueryValues.Time("since", Since, errors);
        var until = QueryValues.Time("until", Until, errors);
        if (since is not null && until is not null && since >= until)
        {
            errors["until"] = ["until must be after since."];
        }

        RequestValidationException.ThrowIfAny(errors);
        return new AuditFilter { TenantId = tenantId, Action = Action, Actor = Actor, Target = Target, Outcome = Outcome, Since = since, Until = until };
    }
}

/// <summary>
/// The audit log's API: a tenant's records and the platform's, filtered and paged, newest first; exports of the same
/// as JSON lines or CSV, oldest first, streamed (each export is itself recorded); verification of the chain.
/// </summary>
public static class AuditEndpoints
{
    public static IEndpointRouteBuilder MapAudit(this IEndpointRouteBuilder app)
    {
        var tenant = app.MapGroup("/api/v1/tenants/{tenantId}").WithTags("Audit");
        tenant.MapGet("/audit", ListTenantAsync).Requires(Permissions.AuditRead).WithSummary("The tenant's audit records, newest first (paged, filtered)");
        tenant.MapGet("/audit:export", ExportTenantAsync)
            .Requires(Permissions.AuditRead)
            .WithSummary("Export the tenant's audit records, oldest first, as JSON lines (format=jsonl) or CSV (format=csv); the export is recorded")
            .Produces(StatusCodes.Status200OK, contentType: JsonLinesType)
            .Produces(StatusCodes.Status200OK, contentType: CsvType);

        var platform = app.MapGroup("/api/v1").WithTags("Audit");
        platform.MapGet("/audit", ListPlatformAsync)
            .Requires(Permissions.PlatformAuditRead)
            .WithSummary("Every audit record, newest first (platform roles; paged, filtered, tenantId too)");
        platform.MapGet("/audit:export", ExportPlatformAsync)
            .Requires(Permissions.PlatformAuditRead)
            .WithSummary("Export every audit record, oldest first, as JSON lines or CSV (platform admins); the export is recorded")
            .Produces(StatusCodes.Status200OK, contentType: JsonLinesType)
            .Produces(StatusCodes.Status200OK, contentType: CsvType);
        platform.MapGet("/audit:verify", VerifyAsync)
            .Requires(Permissions.PlatformAuditRead)
            .WithSummary("Verify the hash chain and the heads written outside the database (platform admins): the first broken link, if any");
        return app;
    }

    private const string JsonLinesType = "application/x-ndjson";
    private const string CsvType = "text/csv";

    private static readonly string[] s_csvHeader =
        ["id", "occurredAt", "completedAt", "actor", "tenantId", "action", "target", "outcome", "details", "before", "after", "clientAddress", "userAgent", "requestId"];

    private static async Task<ItemList<AuditRecord>> ListTenantAsync(
        string tenantId, [AsParameters] AuditQuery filter, [AsParameters] PageQuery page, ClaimsPrincipal user, IGrainFactory grains, AuditQueries queries,
        CancellationToken cancellationToken)
    {
        await grains.RequireTenantAsync(user, tenantId);
        return await ListAsync($"{tenantId}/audit", filter.For(tenantId), page, queries, cancellationToken);
    }

    private static Task<ItemList<AuditRecord>> ListPlatformAsync(
        [AsParameters] AuditQuery filter, [AsParameters] PageQuery page, [FromQuery(Name = "tenantId")] string? tenantId, AuditQueries queries,
        CancellationToken cancellationToken) =>
        ListAsync("audit", filter.For(tenantId), page, queries, cancellationToken);

    private static async Task<ItemList<AuditRecord>> ListAsync(string list, AuditFilter filter, PageQuery page, AuditQueries queries, CancellationToken cancellationToken) =>
        page.Answer(list, await queries.PageAsync(filter, page.For(list), cancellationToken));

    private static async Task<IResult> ExportTenantAsync(
        string tenantId, [AsParameters] AuditQuery filter, string? format, HttpContext context, IGrainFactory grains, AuditQueries queries, AuditLog audit,
        IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json)
    {
        await grains.RequireTenantAsync(context.User, tenantId);
        return await WriteExportAsync(tenantId, filter.For(tenantId), format, context, queries, audit, json.Value.SerializerOptions);
    }

    private static Task<IResult> ExportPlatformAsync(
        [AsParameters] AuditQuery filter, [FromQuery(Name = "tenantId")] string? tenantId, string? format, HttpContext context, AuditQueries queries,
        AuditLog audit, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json) =>
        WriteExportAsync(null, filter.For(tenantId), format, context, queries, audit, json.Value.SerializerOptions);

    /// <summary>Streams the records as JSON lines or CSV into the response, the export itself audited (the API and the portal both call it).</summary>
    public static async Task<IResult> WriteExportAsync(
        string? tenantId, AuditFilter filter, string? format, HttpContext context, AuditQueries queries, AuditLog audit, JsonSerializerOptions json)
    {
        if (format is not ("jsonl" or "csv"))
        {
            throw new RequestValidationException(new Dictionary<string, string[]> { ["format"] = ["format must be 'jsonl' (JSON lines) or 'csv'."] });
        }

        var response = context.Response;
        response.ContentType = format == "csv" ? $"{CsvType}; charset=utf-8" : $"{JsonLinesType}; charset=utf-8";
        response.Headers.CacheControl = "no-store";
        response.Headers[HeaderNames.ContentDisposition] =
            $"attachment; filename=\"audit-{tenantId ?? "platform"}-{DateTimeOffset.UtcNow:yyyyMMdd'T'HHmmss'Z'}.{format}\"";
        await audit.AuditedAsync(
            context,
            tenantId,
            "audit.export",
            tenantId,
            async () =>
            {
                await using var writer = new StreamWriter(response.Body, leaveOpen: true) { NewLine = "\n" };
                if (format == "csv")
                {
                    await writer.WriteAsync(Csv.Row(s_csvHeader));
                }

                var count = 0;
                await foreach (var record in queries.StreamAsync(filter, context.RequestAborted))
                {
                    await writer.WriteAsync(format == "csv" ? Csv.Row(CsvFields(record)) : JsonSerializer.Serialize(record, json) + "\n");
                    if (++count % 200 == 0)
                    {
                        await writer.FlushAsync(context.RequestAborted);
                    }
                }

                await writer.FlushAsync(context.RequestAborted);
                return count;
            },
            count => new AuditOutcome(Details: string.Create(CultureInfo.InvariantCulture, $"{count} record(s) as {format}; filter {Describe(filter)}")),
            outcome: "succeeded");
        return Results.Empty;
    }

    private static async Task<AuditVerification> VerifyAsync(AuditVerifier verifier, CancellationToken cancellationToken) =>
        await verifier.VerifyAsync(cancellationToken);

    private static string?[] CsvFields(AuditRecord record) =>
    [
        record.Id.ToString(CultureInfo.InvariantCulture),
        record.OccurredAt.ToString("O", CultureInfo.InvariantCulture),
        record.CompletedAt?.ToString("O", CultureInfo.InvariantCulture),
        record.Actor,
        record.TenantId,
        record.Action,
        record.Target,
        record.Outcome,
        record.Details,
        record.Before?.GetRawText(),
        record.After?.GetRawText(),
        record.ClientAddress,
        record.UserAgent,
        record.RequestId,
    ];

    private static string Describe(AuditFilter filter) => JsonSerializer.Serialize(filter, AuditJson.Options);
}

internal static class AuditJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };
}
