using Billing.Credits;
using Billing.Sla;
using Billing.Stripe.Tests.Support;
using FakeStripe;
using Microsoft.Extensions.DependencyInjection;

namespace Billing.Stripe.Tests.Credits;

public sealed class SlaCreditsTests
{
    private static readonly DateTimeOffset s_closed = new(2026, 11, 1, 2, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task A_credit_is_applied_once_however_often_it_is_applied()
    {
        await using var scenario = await BillingScenario.StartAsync(start: s_closed);
        var credits = scenario.Host.Get<SlaCredits>();
        var assessment = Assessment("sla:ins-1:2026-10", 1_250);

        Assert.True(await credits.ApplyAsync(assessment));
        Assert.False(await credits.ApplyAsync(assessment));
        Assert.Equal(1, await credits.ApplyMonthAsync(new Assessments(assessment, Assessment("sla:ins-2:2026-10", 300), Assessment("sla:ins-3:2026-10", 0)), new DateOnly(2026, 10, 1)));

        var customer = (await scenario.Host.Get<StripeCustomers>().FindAsync("tnt-a"))!;
        Assert.Equal(-1_550, scenario.Stripe.CustomerBalance(customer));
        Assert.Equal(2, scenario.Stripe.BalanceTransactionCount(customer));
        var view = await credits.ForMonthAsync(new DateOnly(2026, 10, 1));
        Assert.All(view, credit => Assert.Equal(SlaCreditStatus.Applied, credit.Status));
        Assert.All(view, credit => Assert.StartsWith("cbtxn_", credit.StripeTransactionId, StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_billing_worker_applies_the_closed_month_s_credits_at_month_close()
    {
        var october = new Assessments(Assessment("sla:ins-1:2026-10", 400), Assessment("sla:ins-2:2026-10", 100, tenant: "tnt-b"));
        await using var scenario = await BillingScenario.StartAsync(
            start: s_closed, services: services => services.AddSingleton<ISlaAssessmentSource>(october));

        await scenario.Worker.RunOnceAsync();
        await scenario.Worker.RunOnceAsync();
        scenario.Clock.Advance(TimeSpan.FromHours(2));
        await scenario.RestartAsync();
        await scenario.Worker.RunOnceAsync();

        var customers = scenario.Host.Get<StripeCustomers>();
        Assert.Equal(-400, scenario.Stripe.CustomerBalance((await customers.FindAsync("tnt-a"))!));
        Assert.Equal(-100, scenario.Stripe.CustomerBalance((await customers.FindAsync("tnt-b"))!));
        Assert.All(await scenario.Host.Get<SlaCredits>().ForMonthAsync(new DateOnly(2026, 10, 1)), c => Assert.Equal(SlaCreditStatus.Applied, c.Status));
    }

    [Fact]
    public async Task Credits_of_every_closed_month_not_yet_applied_are_applied_not_only_the_last_months()
    {
        // September's credit failed while Stripe was down over October's first days; October was closed late, on 2 December.
        var months = new Assessments(
            Assessment("sla:ins-1:2026-09", 300, month: new DateOnly(2026, 9, 1)),
            Assessment("sla:ins-1:2026-10", 400),
            Assessment("sla:ins-2:2026-11", 100, tenant: "tnt-b", month: new DateOnly(2026, 11, 1)));
        await using var scenario = await BillingScenario.StartAsync(
            start: new DateTimeOffset(2026, 12, 2, 9, 0, 0, TimeSpan.Zero), services: services => services.AddSingleton<ISlaAssessmentSource>(months));

        await scenario.Worker.RunOnceAsync();

        var customers = scenario.Host.Get<StripeCustomers>();
        Assert.Equal(-700, scenario.Stripe.CustomerBalance((await customers.FindAsync("tnt-a"))!));
        Assert.Equal(-100, scenario.Stripe.CustomerBalance((await customers.FindAsync("tnt-b"))!));
        foreach (var month in new[] { new DateOnly(2026, 9, 1), new DateOnly(2026, 10, 1), new DateOnly(2026, 11, 1) })
        {
            Assert.All(await scenario.Host.Get<SlaCredits>().ForMonthAsync(month), c => Assert.Equal(SlaCreditStatus.Applied, c.Status));
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(25)]
    public async Task A_credit_whose_answer_was_lost_is_not_applied_twice_on_retry(int hoursLater)
    {
        await using var scenario = await BillingScenario.StartAsync(start: s_closed, configure: options => options.InProcessRetries = 0);
        var credits = scenario.Host.Get<SlaCredits>();
        var assessment = Assessment("sla:ins-9:2026-10", 700);
        await scenario.Host.Get<StripeCustomers>().EnsureAsync("tnt-a");
        var lost = 0;
        scenario.Stripe.Faults = request =>
            request.Path.EndsWith("/balance_transactions", StringComparison.Ordinal) && request.Method == "POST" && Interlocked.Increment(ref lost) == 1
                ? new Fault(FaultKind.ResetAfterProcessing)
                : Fault.None;

        await Assert.ThrowsAnyAsync<Exception>(() => credits.ApplyAsync(assessment));
        Assert.Equal(SlaCreditStatus.Computed, (await credits.ForMonthAsync(new DateOnly(2026, 10, 1))).Single().Status);
        // Within 24 h the idempotency key replays the first answer; later, the search by assessment id finds it.
        scenario.Clock.Advance(TimeSpan.FromHours(hoursLater));
        Assert.True(await credits.ApplyAsync(assessment));

        var customer = (await scenario.Host.Get<StripeCustomers>().FindAsync("tnt-a"))!;
        Assert.Equal(1, scenario.Stripe.BalanceTransactionCount(customer));
        Assert.Equal(-700, scenario.Stripe.CustomerBalance(customer));
        Assert.Equal(SlaCreditStatus.Applied, (await credits.ForMonthAsync(new DateOnly(2026, 10, 1))).Single().Status);
    }

    [Fact]
    public async Task An_assessment_that_changed_after_it_was_recorded_is_refused()
    {
        await using var scenario = await BillingScenario.StartAsync(start: s_closed);
        var credits = scenario.Host.Get<SlaCredits>();
        await credits.ApplyAsync(Assessment("sla:ins-1:2026-10", 100));

        await Assert.ThrowsAsync<InvalidOperationException>(() => credits.ApplyAsync(Assessment("sla:ins-1:2026-10", 999)));
    }

    internal static SlaAssessment Assessment(string id, long credit, string tenant = "tnt-a", DateOnly? month = null) => new()
    {
        Id = id,
        TenantId = tenant,
        InstanceId = id.Split(':')[1],
        Plan = "team",
        Month = month ?? new DateOnly(2026, 10, 1),
        EligibleMinutes = 44_640,
        BadMinutes = credit == 0 ? 0 : 500,
        UptimePercent = credit == 0 ? 100m : 98.88m,
        TargetPercent = 99.9m,
        CreditPercent = credit == 0 ? 0 : 25,
        ChargeMinorUnits = credit * 4,
        CreditMinorUnits = credit,
        Currency = "usd",
        AssessedAt = s_closed,
    };

    private sealed class Assessments(params SlaAssessment[] assessments) : ISlaAssessmentSource
    {
        public Task<IReadOnlyList<SlaAssessment>> AssessmentsForMonthAsync(DateOnly month, CancellationToken cancellationToken = default) =>
            Task.FromResult<IReadOnlyList<SlaAssessment>>([.. assessments.Where(a => a.Month == month)]);

        public Task<IReadOnlyList<DateOnly>> MonthsWithCreditsAsync(CancellationToken cancellationToken = default) =>
            Task.FromResult<IReadOnlyList<DateOnly>>([.. assessments.Where(a => a.CreditMinorUnits > 0).Select(a => a.Month).Distinct().Order()]);
    }
}
