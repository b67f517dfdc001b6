using System.Diagnostics;
using Billing.Ledger;
using Billing.Reconciliation;
using Billing.Stripe.Tests.Support;
using Billing.Usage;
using ControlPlane.Persistence;

namespace Billing.Stripe.Tests.Reconciliation;

/// <summary>
/// Stripe's figures reach reconciliation through the background sync: read within its own budget, again only when
/// they may have changed, and judged by their age.
/// </summary>
public sealed class StripeSyncTests
{
    private static readonly DateTimeOffset s_hour = new(2026, 10, 1, 1, 0, 0, TimeSpan.Zero);
    private static readonly DateOnly s_october = new(2026, 10, 1);

    private static bool SyncReads(string endpoint) =>
        endpoint.EndsWith("/event_summaries", StringComparison.Ordinal) || endpoint == "GET /v1/invoices" || endpoint.EndsWith("/balance_transactions", StringComparison.Ordinal);

    private static bool Summaries(string endpoint) => endpoint.EndsWith("/event_summaries", StringComparison.Ordinal);

    [Fact]
    public async Task The_sync_reads_again_only_the_figures_that_changed_and_never_exceeds_its_request_budget()
    {
        const int Budget = 8;
        await using var scenario = await BillingScenario.StartAsync(start: s_hour, configure: options => options.Sync.RequestsPerSecond = Budget);
        var tenants = Enumerable.Range(0, 24).Select(i => $"tnt-s{i:00}").ToList();
        foreach (var tenant in tenants)
        {
            await scenario.AppendAsync(tenant, "operations", tenant, 5, s_hour);
        }

        scenario.Clock.Advance(TimeSpan.FromMinutes(66));
        await scenario.DrainAsync(TimeSpan.FromMinutes(1));
        scenario.Clock.Advance(scenario.Host.Get<Microsoft.Extensions.Options.IOptions<StripeBillingOptions>>().Value.SummaryLag);
        var sync = scenario.Host.Get<StripeSync>();

        var before = scenario.Stripe.Stats.Count(Summaries);
        var first = await sync.SyncOnceAsync();
        Assert.Equal(tenants.Count, first.Summaries);
        Assert.Equal(tenants.Count, scenario.Stripe.Stats.Count(Summaries) - before);
        var peak = scenario.Stripe.Stats.PeakPerSecond(SyncReads);
        Assert.True(peak <= Budget, $"the sync sent {peak} requests within one second; its budget is {Budget}");

        var unchanged = await sync.SyncOnceAsync();
        Assert.Equal(0, unchanged.Summaries);
        Assert.Equal(tenants.Count, scenario.Stripe.Stats.Count(Summaries) - before);

        await scenario.AppendAsync(tenants[3], "operations", "more", 7, s_hour.AddHours(1));
        scenario.Clock.Advance(TimeSpan.FromHours(1));
        await scenario.DrainAsync(TimeSpan.FromMinutes(1));
        var changed = await sync.SyncOnceAsync();
        Assert.Equal(1, changed.Summaries);
        Assert.Equal(tenants.Count + 1, scenario.Stripe.Stats.Count(Summaries) - before);
    }

    [Fact]
    public async Task A_summary_read_before_Stripe_counted_the_usage_is_lag_with_its_age_and_agrees_once_read_again()
    {
        await using var scenario = await BillingScenario.StartAsync(start: s_hour);
        await scenario.AppendAsync("tnt-lag", "operations", "e1", 10, s_hour);
        scenario.Clock.Advance(TimeSpan.FromMinutes(66));
        await scenario.DrainAsync(TimeSpan.FromSeconds(10));
        var sync = scenario.Host.Get<StripeSync>();
        var reconciliation = scenario.Host.Get<FinanceReconciliation>();

        // Stripe acknowledged the event but has not aggregated it yet: its summary still says 0.
        Assert.Equal(1, (await sync.SyncOnceAsync()).Summaries);
        scenario.Clock.Advance(TimeSpan.FromMinutes(30));
        var early = (await reconciliation.ReconcileAsync(s_october)).Lines.Single();
        Assert.Equal((10L, 0L), (early.Acknowledged, early.StripeSummary!.Value));
        Assert.Equal(30 * 60, early.StripeSummaryAgeSeconds);
        Assert.Equal([(DiscrepancyClass.StripeLag, 10L)], early.Discrepancies.Select(d => (d.Class, d.Quantity)).ToList());

        // Once Stripe's lag has passed, the sync reads the figure again on its own, and it agrees.
        scenario.Clock.Advance(TimeSpan.FromHours(1));
        Assert.Equal(1, (await sync.SyncOnceAsync()).Summaries);
        var settled = (await reconciliation.ReconcileAsync(s_october)).Lines.Single();
        Assert.Equal((10L, 10L, 0L), (settled.Acknowledged, settled.StripeSummary!.Value, settled.StripeSummaryAgeSeconds!.Value));
        Assert.Empty(settled.Discrepancies);
    }

    [Theory]
    [InlineData(DatabaseProvider.Sqlite)]
    [InlineData(DatabaseProvider.Postgres)]
    public async Task Reconciling_1000_tenants_with_3_meters_takes_under_10_seconds_and_calls_Stripe_not_once(DatabaseProvider provider)
    {
        await using var scenario = await BillingScenario.StartAsync(provider, start: s_hour, configure: options =>
        {
            foreach (var meter in new[] { "operations", "instance_hours_small", "instance_hours_large" })
            {
                options.Meters[meter] = new StripeMeterOptions { PriceId = "price_" + meter };
            }
        });
        var events = (
            from tenant in Enumerable.Range(0, 1000)
            from meter in new[] { "operations", "instance_hours_small", "instance_hours_large" }
            select new UsageEvent
            {
                SourceEventId = $"t{tenant}:{meter}",
                TenantId = $"tnt-{tenant:0000}",
                InstanceId = $"ins-{tenant:0000}",
                Meter = meter,
                Quantity = 5,
                OccurredAt = s_hour,
            }).ToList();
        await scenario.Ledger.AppendAsync(events);
        scenario.Clock.Advance(TimeSpan.FromMinutes(66));
        await scenario.Host.Get<MeterEventOutbox>().EnqueueClosedHoursAsync();
        var now = scenario.Clock.GetUtcNow().ToUnixTimeSeconds();
        var (start, end) = UsageHours.Month(s_october);
        // What a month of dispatch and sync would have left: everything acknowledged, customers known, Stripe's
        // summaries and invoices synced (one in twenty summaries still behind Stripe).
        await ExecuteAsync(scenario.Database, $$"""
            UPDATE meter_outbox SET status = 'acknowledged', attempts = 1, first_attempt_at = {{now}}, completed_at = {{now}};
            INSERT INTO stripe_customers (tenant_id, customer_id, requested_at, created_at)
                SELECT DISTINCT tenant_id, 'cus_' || tenant_id, 0, 0 FROM meter_outbox;
            INSERT INTO stripe_summary_snapshots (tenant_id, meter, period, customer_id, stripe_total, acknowledged_at_sync, last_acknowledged_at, synced_at)
                SELECT tenant_id, meter, '2026-10', 'cus_' || tenant_id, CASE WHEN id % 20 = 0 THEN 0 ELSE SUM(value) END, SUM(value), {{now}}, {{now}}
                FROM meter_outbox GROUP BY tenant_id, meter, id;
            INSERT INTO stripe_invoice_snapshots (invoice_id, customer_id, period_start, period_end, status, created, lines, synced_at)
                SELECT 'in_' || tenant_id, 'cus_' || tenant_id, {{start}}, {{end}}, 'draft', {{now}}, '{"price_operations":5}', {{now}}
                FROM stripe_customers;
            """);
        var requests = scenario.Stripe.Stats.Requests;

        var elapsed = Stopwatch.StartNew();
        var report = await scenario.Host.Get<FinanceReconciliation>().ReconcileAsync(s_october);
        elapsed.Stop();

        Assert.Equal(requests, scenario.Stripe.Stats.Requests);
        Assert.Equal(3000, report.Lines.Count);
        Assert.True(elapsed.Elapsed < TimeSpan.FromSeconds(10), $"reconciliation took {elapsed.Elapsed}");
        Assert.Equal(150, report.Lines.Count(line => line.Discrepancies.Any(d => d.Class == DiscrepancyClass.StripeLag)));
        Assert.Equal(2850, report.Lines.Count(line => line.Discrepancies.Count == 0 && line.StripeSummary == 5));
    }

    private static async Task ExecuteAsync(Database database, string sql)
    {
        await using var connection = await database.OpenAsync();
        foreach (var statement in sql.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            await using var command = connection.CreateCommand();
            command.CommandText = statement;
            await command.ExecuteNonQueryAsync();
        }
    }
}
