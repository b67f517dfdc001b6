using Billing.Reconciliation;
using Billing.Stripe.Tests.Support;
using Billing.Usage;
using ControlPlane.Persistence;
using FakeStripe;

namespace Billing.Stripe.Tests.Stripe;

/// <summary>
/// A month of usage for 20 tenants through a Stripe that fails 30 % of all calls (rate limits, server errors, answers
/// lost after Stripe acted, hangs), with duplicates, late usage and corrections, and the billing host crashed and
/// rebuilt mid-month. Stripe must end up holding exactly the ledger's totals, with one customer per tenant.
/// </summary>
public sealed class FaultRunTests
{
    private static readonly DateTimeOffset s_month = new(2026, 10, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly string[] s_meters = ["instance_seconds_small", "operations"];

    public static TheoryData<DatabaseProvider> Providers => [DatabaseProvider.Sqlite, DatabaseProvider.Postgres];

    [Theory]
    [MemberData(nameof(Providers))]
    public async Task Stripe_receives_exactly_the_ledger_totals_through_failures_and_a_restart(DatabaseProvider provider)
    {
        await using var scenario = await BillingScenario.StartAsync(provider, s_month, options =>
        {
            options.RequestTimeout = TimeSpan.FromMilliseconds(500);
            options.MaxConcurrentLanes = 8;
        });
        var faults = new Random(7);
        scenario.Stripe.Faults = _ =>
        {
            lock (faults)
            {
                var roll = faults.NextDouble();
                return roll switch
                {
                    < 0.12 => new Fault(FaultKind.RateLimited, faults.Next(1, 120)),
                    < 0.21 => new Fault(FaultKind.ServerError),
                    < 0.29 => new Fault(FaultKind.ResetAfterProcessing),
                    < 0.30 => new Fault(FaultKind.HangAfterProcessing),
                    _ => Fault.None,
                };
            }
        };

        var tenants = Enumerable.Range(0, 20).Select(i => $"tnt-f{i:00}").ToList();
        foreach (var tenant in tenants.Where((_, i) => i % 2 == 0))
        {
            // Half are onboarded ahead of usage, twice (a retried create); the rest get their customer on first usage.
            await scenario.Host.Get<StripeCustomers>().RequestAsync(tenant, "Tenant " + tenant);
            await scenario.Host.Get<StripeCustomers>().RequestAsync(tenant, "Tenant " + tenant);
        }

        var usage = new Random(42);
        var sent = new List<UsageEvent>();
        var restarted = false;
        for (var step = s_month; step < s_month.AddMonths(1); step = step.AddHours(6))
        {
            var batch = new List<UsageEvent>();
            for (var hour = step; hour < step.AddHours(6); hour = hour.AddHours(1))
            {
                foreach (var tenant in tenants)
                {
                    foreach (var meter in s_meters.Where(_ => usage.NextDouble() < 0.05))
                    {
                        batch.Add(new UsageEvent
                        {
                            SourceEventId = $"{tenant}:{meter}:{hour:yyyyMMddHH}",
                            TenantId = tenant,
                            InstanceId = "ins-" + tenant,
                            Meter = meter,
                            Quantity = usage.Next(1, 3600),
                            OccurredAt = hour.AddMinutes(usage.Next(0, 60)),
                        });
                    }
                }
            }

            // Late usage for hours already sent, corrections of earlier events, and replays of events already kept.
            foreach (var earlier in Pick(sent, 2))
            {
                batch.Add(earlier with { SourceEventId = earlier.SourceEventId + ":late", Quantity = usage.Next(1, 500) });
            }

            foreach (var earlier in Pick(sent.Where(e => e.Corrects is null && e.Quantity > 1).ToList(), 1))
            {
                batch.Add(earlier with { SourceEventId = earlier.SourceEventId + ":fix", Quantity = -(earlier.Quantity / 2), Corrects = earlier.SourceEventId });
            }

            batch.AddRange(Pick(sent, 10));
            await scenario.Ledger.AppendAsync(batch.DistinctBy(e => e.SourceEventId).ToList());
            var known = sent.Select(e => e.SourceEventId).ToHashSet();
            sent.AddRange(batch.Where(e => known.Add(e.SourceEventId)));

            scenario.Clock.Advance(TimeSpan.FromHours(6));
            if (!restarted && step >= s_month.AddDays(15))
            {
                // Crash mid-round: the host goes away while requests are in flight and rows are claimed.
                var round = Task.Run(() => scenario.Worker.RunOnceAsync());
                await Task.Delay(50);
                await scenario.RestartAsync();
                await round.ContinueWith(_ => { }, TaskScheduler.Default);
                restarted = true;
                continue;
            }

            await scenario.Worker.RunOnceAsync();
        }

        scenario.Clock.Advance(TimeSpan.FromHours(1));
        await scenario.DrainAsync(TimeSpan.FromMinutes(2), maxRounds: 3000);

        var ledgerTotals = await scenario.Ledger.TotalsAsync(long.MinValue, long.MaxValue);
        Assert.Equal(tenants.Count * s_meters.Length, ledgerTotals.Count);
        foreach (var ((tenant, meter), total) in ledgerTotals)
        {
            if (await scenario.StripeTotalAsync(tenant, meter) != total)
            {
                Assert.Fail(await scenario.ExplainDifferenceAsync(tenant, meter, total));
            }
        }

        var customers = scenario.Stripe.Customers();
        Assert.Equal(tenants.Count, customers.Count);
        Assert.Equal(tenants.Order(), customers.Select(c => c.Metadata["tenant_id"]).Order());
        Assert.Equal(0, await scenario.ScalarAsync("SELECT COUNT(*) FROM meter_outbox WHERE status <> 'acknowledged'"));
        Assert.Equal(0, await scenario.ScalarAsync("SELECT COUNT(*) FROM finance_adjustments"));
        Assert.True(scenario.Stripe.Stats.InjectedFaults > 300, $"only {scenario.Stripe.Stats.InjectedFaults} faults were injected");
        Assert.True(scenario.Stripe.Stats.IdempotentReplays + scenario.Stripe.Stats.DuplicateIdentifiers > 0, "no lost answer was ever resent");

        scenario.Stripe.Faults = _ => Fault.None;
        scenario.Clock.Advance(scenario.Stripe.Options.SummaryLag);
        await scenario.Host.Get<StripeSync>().SyncOnceAsync();
        var report = await scenario.Host.Get<FinanceReconciliation>().ReconcileAsync(DateOnly.FromDateTime(s_month.UtcDateTime));
        Assert.Equal(tenants.Count * s_meters.Length, report.Lines.Count);
        Assert.All(report.Lines, line =>
        {
            Assert.Empty(line.Discrepancies);
            Assert.Equal(line.Ledger, line.StripeSummary);
        });
        Assert.Equal(ledgerTotals.Values.Sum(), report.Lines.Sum(l => l.Acknowledged));
        Assert.True(await scenario.ScalarAsync("SELECT MAX(version) FROM meter_outbox") > 1);
        Assert.True(await scenario.ScalarAsync("SELECT COUNT(*) FROM meter_outbox WHERE value < 0") > 0);

        IEnumerable<UsageEvent> Pick(List<UsageEvent> from, int count) =>
            from.Count == 0 ? [] : Enumerable.Range(0, count).Select(_ => from[usage.Next(from.Count)]).DistinctBy(e => e.SourceEventId).ToList();
    }
}
