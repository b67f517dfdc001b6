namespace FakeStripe;

/// <summary>
/// How truthful the fake is. Every behaviour is on by default with Stripe's own numbers (a test-mode account), so the
/// product is tested against a Stripe no kinder than the real one; a test may tune a number, never rely on it being off.
/// </summary>
public sealed class FakeStripeOptions
{
    /// <summary>
    /// Requests per second one endpoint (a method and route, e.g. <c>POST /v1/billing/meter_events</c>) allows: 25 in
    /// test mode and sandboxes, where meter events count too. Null: unlimited. Counted in real time, as Stripe does.
    /// </summary>
    public int? EndpointRequestsPerSecond { get; set; } = 25;

    /// <summary>Requests per second the whole account allows: 25 in test mode and sandboxes (100 live). Null: unlimited.</summary>
    public int? AccountRequestsPerSecond { get; set; } = 25;

    /// <summary>
    /// Stripe processes meter events asynchronously: an event shows in event summaries, and on invoices finalized after
    /// it, only this long (on the fake's clock) after Stripe accepted it.
    /// </summary>
    public TimeSpan SummaryLag { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>A new customer is found by search only this long (on the fake's clock) after it was created; lists see it at once.</summary>
    public TimeSpan SearchLag { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How long (real time) a meter event holds its customer+meter slot: Stripe allows one concurrent call per customer
    /// and meter, and a slot held for no time at all would never show a collision.
    /// </summary>
    public TimeSpan MeterEventProcessing { get; set; } = TimeSpan.FromMilliseconds(15);
}
