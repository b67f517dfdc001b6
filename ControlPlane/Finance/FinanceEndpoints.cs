using System.Globalization;
using System.Text.RegularExpressions;
using Billing.Reconciliation;
using Billing.Stripe;
using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Errors;
using ControlPlane.Security;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace ControlPlane.Finance;

public static partial class FinanceEndpoints
{
    public static IEndpointRouteBuilder MapFinance(this IEndpointRouteBuilder app)
    {
        var finance = app.MapGroup("/api/v1/finance").WithTags("Finance");
        finance.MapGet("/reconciliation", ReconcileAsync)
            .Requires(Permissions.FinanceRead)
            .WithSummary("Usage and credits per tenant and meter for a month: ledger, Stripe, invoices, and every discrepancy classified (finance, platform admins)")
            .Produces<ReconciliationReport>(contentType: "application/json")
            .Produces(StatusCodes.Status200OK, contentType: "text/csv");

        // Reading Stripe now spends the cluster's Stripe budget, so it is an operator's action, and audited.
        finance.MapPost("/tenants/{tenantId}/stripe:sync", SyncTenantAsync)
            .Requires(Permissions.StripeSync)
            .WithSummary("Read one tenant's Stripe summaries, invoices and credits into the database now, due or not (platform admins, SREs)")
            .Produces<StripeSyncResult>();
        return app;
    }

    /// <summary><c>?period=yyyy-MM</c>; CSV with <c>format=csv</c> or <c>Accept: text/csv</c>, JSON otherwise.</summary>
    private static async Task<IResult> ReconcileAsync(
        HttpContext context, FinanceReconciliation reconciliation, AuditLog audit, TimeProvider clock, string? period, string? format)
    {
        var errors = new Dictionary<string, string[]>();
        DateOnly month = default;
        if (string.IsNullOrEmpty(period))
        {
            errors["period"] = ["A period is required, as yyyy-MM (e.g. 2026-11)."];
        }
        else if (!DateOnly.TryParseExact(period, "yyyy-MM", CultureInfo.InvariantCulture, DateTimeStyles.None, out month))
        {
            errors["period"] = [$"'{period}' is not a month; use yyyy-MM (e.g. 2026-11)."];
        }
        else if (month > DateOnly.FromDateTime(clock.GetUtcNow().UtcDateTime))
        {
            errors["period"] = [$"{period} has not started yet."];
        }

        if (format is not (null or "json" or "csv"))
        {
            errors["format"] = ["Use 'json' or 'csv', or leave it out and send 'Accept: text/csv' for CSV."];
        }

        RequestValidationException.ThrowIfAny(errors);
        var csv = format == "csv" || (format is null && context.Request.GetTypedHeaders().Accept
            .Any(accept => accept.MediaType.Equals("text/csv", StringComparison.OrdinalIgnoreCase)));
        // A finance export: every read of one is recorded, like a read of a secret.
        var report = await audit.AuditedAsync(
            context,
            tenantId: null,
            "finance.reconciliation.export",
            period,
            () => reconciliation.ReconcileAsync(month, context.RequestAborted),
            read => new AuditOutcome(Details: $"{read.Lines.Count} usage line(s), {read.Credits.Count} credit(s) as {(csv ? "csv" : "json")}"),
            outcome: "succeeded");
        if (!csv)
        {
            return TypedResults.Ok(report);
        }

        context.Response.Headers[HeaderNames.ContentDisposition] = $"attachment; filename=\"reconciliation-{report.Period}.csv\"";
        return TypedResults.Text(ReconciliationCsv.Write(report), "text/csv; charset=utf-8");
    }

    private static async Task<StripeSyncResult> SyncTenantAsync(
        string tenantId, HttpContext context, StripeSync sync, StripeCustomers customers, AuditLog audit, IOptions<StripeBillingOptions> options)
    {
        if (!TenantIdPattern().IsMatch(tenantId))
        {
            RequestValidationException.ThrowIfAny(new Dictionary<string, string[]> { ["tenantId"] = ["A tenant id is 1 to 40 letters, digits, '-' or '_'."] });
        }

        return await audit.AuditedAsync(
            context,
            tenantId,
            "finance.stripe.sync",
            tenantId,
            async () =>
            {
                if (!options.Value.Enabled)
                {
                    throw new ControlPlaneException(
                        ProblemKind.Conflict,
                        "stripe-not-configured",
                        "Stripe is not configured",
                        "This control plane has no Stripe:ApiKey, so there is nothing to sync from.");
                }

                _ = await customers.FindAsync(tenantId, CancellationToken.None) ?? throw Problems.NotFound("Stripe customer of tenant", tenantId);
                return await sync.SyncTenantAsync(tenantId, CancellationToken.None);
            },
            result => new AuditOutcome(Details: $"{result.Summaries} summaries, {result.Invoices} invoices, {result.Credits} balance transactions"),
            outcome: "succeeded");
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,40}$")]
    private static partial Regex TenantIdPattern();
}
