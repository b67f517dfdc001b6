using Billing.Credits;
using Billing.Ledger;
using Billing.Reconciliation;
using Billing.Stripe.Tests.Credits;
using Billing.Stripe.Tests.Support;
using FakeStripe;

namespace Billing.Stripe.Tests.Reconciliation;

public sealed class FinanceReconciliationTests
{
    private static readonly DateTimeOffset s_hour = new(2026, 10, 1, 1, 0, 0, TimeSpan.Zero);
    private static readonly DateOnly s_october = new(2026, 10, 1);

    [Fact]
    public async Task Each_planted_discrepancy_is_found_and_classified()
    {
        await using var scenario = await BillingScenario.StartAsync(start: s_hour, configure: options =>
        {
            options.MaxAttempts = 2;
            options.InProcessRetries = 0;
            options.Meters["operations"] = new StripeMeterOptions { PriceId = "price_operations" };
            options.Sync.Months = 3;
        });
        var customers = scenario.Host.Get<StripeCustomers>();
        await scenario.ScalarAsync("INSERT INTO stripe_customers (tenant_id, customer_id, requested_at, created_at) VALUES ('tnt-rejected', 'cus_unknown', 0, 0); SELECT 1");
        foreach (var tenant in new[] { "tnt-clean", "tnt-dead", "tnt-rejected", "tnt-late", "tnt-foreign" })
        {
            await scenario.AppendAsync(tenant, "operations", tenant + "-1", 10, s_hour.AddMinutes(5));
        }

        // The dead letter: Stripe fails every call for this tenant's customer, and rows get two attempts.
        var deadCustomer = await customers.EnsureAsync("tnt-dead");
        scenario.Stripe.Faults = request => request.Form.GetValueOrDefault("payload[stripe_customer_id]") == deadCustomer ? new Fault(FaultKind.ServerError) : Fault.None;
        scenario.Clock.Advance(TimeSpan.FromMinutes(66));
        await scenario.Worker.RunOnceAsync();
        scenario.Clock.Advance(TimeSpan.FromMinutes(1));
        await scenario.Worker.RunOnceAsync();
        scenario.Stripe.Faults = _ => Fault.None;

        // Stripe has processed what it took; the invoice is finalized; then late usage for the same hour reaches Stripe.
        scenario.Clock.Advance(scenario.Stripe.Options.SummaryLag);
        var (start, end) = UsageHours.Month(s_october);
        foreach (var tenant in new[] { "tnt-clean", "tnt-late", "tnt-foreign" })
        {
            scenario.Stripe.FinalizeInvoice((await customers.FindAsync(tenant))!, start, end, new Dictionary<string, string> { ["operations"] = "price_operations" });
        }

        await scenario.AppendAsync("tnt-late", "operations", "tnt-late-2", 4, s_hour.AddMinutes(30));
        await scenario.Worker.RunOnceAsync();
        // Usage Stripe counted that we never sent.
        scenario.Stripe.SeedMeterEvents((await customers.FindAsync("tnt-foreign"))!, "operations", [(s_hour.ToUnixTimeSeconds(), 3)]);

        // Forty days on: usage for October is too old for Stripe; another tenant is rate-limited and waits.
        scenario.Clock.Advance(TimeSpan.FromDays(40));
        await scenario.AppendAsync("tnt-too-old", "operations", "tnt-too-old-1", 6, s_hour.AddDays(2));
        await scenario.AppendAsync("tnt-waiting", "operations", "tnt-waiting-1", 8, s_hour.AddDays(30).AddHours(20));
        await customers.EnsureAsync("tnt-waiting");
        scenario.Stripe.Faults = request => request.Path == "/v1/billing/meter_events" ? new Fault(FaultKind.RateLimited, 3600) : Fault.None;
        await scenario.Worker.RunOnceAsync();
        scenario.Stripe.Faults = _ => Fault.None;
        // Usage not even aggregated yet.
        await scenario.AppendAsync("tnt-unaggregated", "operations", "tnt-unaggregated-1", 2, s_hour.AddDays(3));

        // SLA credits: one applied, one whose application failed.
        var credits = scenario.Host.Get<SlaCredits>();
        await credits.ApplyAsync(SlaCreditsTests.Assessment("sla:ins-c:2026-10", 500, "tnt-clean"));
        scenario.Stripe.Faults = request => request.Path.EndsWith("/balance_transactions", StringComparison.Ordinal) ? new Fault(FaultKind.ServerError) : Fault.None;
        await Assert.ThrowsAnyAsync<Exception>(() => credits.ApplyAsync(SlaCreditsTests.Assessment("sla:ins-d:2026-10", 200, "tnt-dead")));
        scenario.Stripe.Faults = _ => Fault.None;

        await scenario.Host.Get<StripeSync>().SyncOnceAsync();
        var requests = scenario.Stripe.Stats.Requests;
        var report = await scenario.Host.Get<FinanceReconciliation>().ReconcileAsync(s_october);

        Assert.Equal(requests, scenario.Stripe.Stats.Requests);
        Assert.True(report.StripeSynced);
        Assert.Empty(Line("tnt-clean").Discrepancies);
        Assert.Equal((10L, 10L, 10L, 10L), (Line("tnt-clean").Ledger, Line("tnt-clean").Acknowledged, Line("tnt-clean").StripeSummary!.Value, Line("tnt-clean").Invoiced!.Value));
        Assert.Equal([(DiscrepancyClass.DeadLetter, 10L)], Classes("tnt-dead"));
        Assert.Equal([(DiscrepancyClass.RejectedByStripe, 10L)], Classes("tnt-rejected"));
        Assert.Equal([(DiscrepancyClass.LateAfterFinalization, 4L)], Classes("tnt-late"));
        Assert.Equal([(DiscrepancyClass.StripeSummaryMismatch, 3L), (DiscrepancyClass.LateAfterFinalization, 3L)], Classes("tnt-foreign"));
        Assert.Equal([(DiscrepancyClass.LateAfterFinalization, 6L)], Classes("tnt-too-old"));
        Assert.Equal([(DiscrepancyClass.PipelineLag, 8L)], Classes("tnt-waiting"));
        Assert.Equal([(DiscrepancyClass.PipelineLag, 2L)], Classes("tnt-unaggregated"));
        Assert.DoesNotContain(report.Lines, line => line.Discrepancies.Any(d => d.Class == DiscrepancyClass.Unexplained));
        Assert.Equal(
            [("sla:ins-c:2026-10", SlaCreditStatus.Applied, 0), ("sla:ins-d:2026-10", SlaCreditStatus.Computed, 1)],
            report.Credits.Select(c => (c.AssessmentId, c.Status, c.Discrepancies.Count)).OrderBy(c => c.AssessmentId).ToList());

        var csv = ReconciliationCsv.Write(report).Split("\r\n");
        Assert.StartsWith("kind,period,tenant_id,", csv[0], StringComparison.Ordinal);
        Assert.Contains(csv, row => row.StartsWith("usage,2026-10,tnt-dead,", StringComparison.Ordinal) && row.EndsWith(",dead_letter=10", StringComparison.Ordinal));
        Assert.Contains(csv, row => row.StartsWith("credit,2026-10,tnt-dead,", StringComparison.Ordinal) && row.Contains(",computed,pipeline_lag=200", StringComparison.Ordinal));

        ReconciliationLine Line(string tenant) => report.Lines.Single(l => l.TenantId == tenant && l.Meter == "operations");
        List<(string, long)> Classes(string tenant) => [.. Line(tenant).Discrepancies.Select(d => (d.Class, d.Quantity))];
    }
}
