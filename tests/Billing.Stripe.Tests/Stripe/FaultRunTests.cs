using Billing.Reconciliation;
using Billing.Stripe.Tests.Support;
using Billing.Usage;
using ControlPlane.Persistence;
using FakeStripe;

namespace Billing.Stripe.Tests.Stripe;

/// <summary>
/// A month of usage for 20 tenants through a Stripe that fails 30 % of all calls (rate limits, server errors, answers
/// lost after Stripe acted, hangs) on top of its own rate limits, replays and lagging summaries, down for a whole day
/// in the middle, with duplicates, late usage and corrections, and a billing host crashed and rebuilt mid-month; on
/// PostgreSQL a second host runs beside it all month, as a second silo would. Stripe must end up holding exactly the
/// ledger's totals, with one customer per tenant, nothing dead and nothing rejected.
/// </summary>
public sealed class FaultRunTests
{
    private static readonly DateTimeOffset s_month = new(2026, 10, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly string[] s_meters = ["instance_seconds_small", "operations"];

    public static TheoryData<DatabaseProvider, int> Runs => new() { { DatabaseProvider.Sqlite, 1 }, { DatabaseProvider.Postgres, 2 } };

    [Theory]
    [MemberData(nameof(Runs))]
    public async Task Stripe_receives_exactly_the_ledger_totals_through_failures_a_day_long_outage_and_a_restart(DatabaseProvider provider, int hosts)
    {
        await using var scenario = await BillingScenario.StartAsync(provider, s_month, options =>
        {
            options.RequestTimeout = TimeSpan.FromMilliseconds(500);
            options.MaxConcurrentLanes = 8;
            // As in production, so that "nothing dead" means something.
            options.MaxAttempts = new StripeBillingOptions().MaxAttempts;
        });
        var others = new List<BillingHost>();
        for (var host = 1; host < hosts; host++)
        {
            others.Add(await scenario.StartAnotherHostAsync());
        }

        var faults = new Random(7);
        var outage = (From: s_month.AddDays(8), To: s_month.AddDays(9));
        scenario.Stripe.Faults = _ =>
        {
            lock (faults)
            {
                var roll = faults.NextDouble();
                var now = scenario.Clock.GetUtcNow();
                if (now >= outage.From && now < outage.To)
                {
                    return new Fault(roll < 0.7 ? FaultKind.ServerError : FaultKind.ResetAfterProcessing);
                }

                return roll switch
                {
                    < 0.12 => new Fault(FaultKind.RateLimited, faults.Next(1, 120)),
                    < 0.18 => new Fault(FaultKind.ServerError),
                    // Saved under the idempotency key and replayed to every retry for 24 h, with and without effect.
                    < 0.21 => new Fault(FaultKind.ServerErrorDuringExecution),
                    < 0.23 => new Fault(FaultKind.ServerErrorAfterProcessing),
                    < 0.29 => new Fault(FaultKind.ResetAfterProcessing),
                    < 0.30 => new Fault(FaultKind.HangAfterProcessing),
                    _ => Fault.None,
                };
            }
        };
        var acknowledgedByOthers = 0;
        async Task OtherHostsRoundAsync()
        {
            foreach (var result in await Task.WhenAll(others.Select(other => other.Get<StripeBillingWorker>().RunOnceAsync())))
            {
                acknowledgedByOthers += result.Acknowledged;
            }
        }

        var tenants = Enumerable.Range(0, 20).Select(i => $"tnt-f{i:00}").ToList();
        foreach (var tenant in tenants.Where((_, i) => i % 2 == 0))
        {
            // Half are onboarded ahead of usage, twice (a retried create); the rest get their customer on first usage.
            await scenario.Host.Get<StripeCustomers>().RequestAsync(tenant, "Tenant " + tenant);
            await (others.FirstOrDefault() ?? scenario.Host).Get<StripeCustomers>().RequestAsync(tenant, "Tenant " + tenant);
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
                // Crash mid-round: the host goes away while requests are in flight and rows are claimed; the others go on.
                var round = Task.Run(() => scenario.Worker.RunOnceAsync());
                var othersRound = OtherHostsRoundAsync();
                await Task.Delay(50);
                await scenario.RestartAsync();
                await round.ContinueWith(_ => { }, TaskScheduler.Default);
                await othersRound;
                restarted = true;
                continue;
            }

            await Task.WhenAll(scenario.Worker.RunOnceAsync(), OtherHostsRoundAsync());
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
        Assert.True(scenario.Stripe.Stats.ReplayedErrors > 0, "Stripe never replayed a saved failure");
        Assert.True(hosts == 1 || acknowledgedByOthers > 0, "the second host never sent anything");

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
