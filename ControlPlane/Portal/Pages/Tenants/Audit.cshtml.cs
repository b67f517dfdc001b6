using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Security;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;

namespace ControlPlane.Portal.Pages.Tenants;

/// <summary>
/// The tenant's audit log (<c>audit:read</c>): the newest entries that match the filters, read as the audit trail keeps
/// them, and their export as CSV or JSON lines (the same export, and the same audit record of it, as the API's).
/// </summary>
public sealed class AuditModel(IGrainFactory grains, AuditQueries queries, AuditLog audit, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json)
    : TenantPage(grains)
{
    public const int Shown = 100;

    [BindProperty(SupportsGet = true)]
    public string? Action { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? Actor { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? Outcome { get; set; }

    /// <summary>The id of the last record of the page before: this page holds older ones. Only records of the tenant that match the filters are ever read.</summary>
    [BindProperty(SupportsGet = true)]
    public long? Before { get; set; }

    public IReadOnlyList<AuditRecord> Entries { get; private set; } = [];

    /// <summary>Where the next (older) page starts, when there is one.</summary>
    public string? Older { get; private set; }

    public bool Filtered => Action is not null || Actor is not null || Outcome is not null;

    /// <summary>The current filters as a query string, for the export links.</summary>
    public string Query => string.Join("&", new[] { ("action", Action), ("actor", Actor), ("outcome", Outcome) }
        .Where(pair => pair.Item2 is not null)
        .Select(pair => $"{pair.Item1}={Uri.EscapeDataString(pair.Item2!)}"));

    public async Task OnGetAsync()
    {
        await LoadTenantAsync(Permissions.AuditRead, "audit");
        var page = await queries.PageAsync(
            Filter(), new PageRequest { Size = Shown, After = Before is > 0 ? Before.Value.ToString(System.Globalization.CultureInfo.InvariantCulture) : null }, HttpContext.RequestAborted);
        Entries = page.Items;
        Older = page.NextAfter;
    }

    public async Task<IActionResult> OnGetExportAsync(string? format)
    {
        await LoadTenantAsync(Permissions.AuditRead, "audit");
        await AuditEndpoints.WriteExportAsync(TenantId, Filter(), format, HttpContext, queries, audit, json.Value.SerializerOptions);
        return new EmptyResult();
    }

    private AuditFilter Filter()
    {
        Action = Blank(Action);
        Actor = Blank(Actor);
        Outcome = Blank(Outcome);
        return new AuditQuery(Action, Actor, Target: null, Outcome, Since: null, Until: null).For(TenantId);
    }

    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
