namespace Billing.Stripe;

/// <summary>
/// <c>Stripe:*</c>. Billing talks to Stripe only when <see cref="ApiKey"/> is set (from the environment or a secret
/// store, never from a checked-in file); the key is never logged.
/// </summary>
public sealed class StripeBillingOptions
{
    public const string SectionName = "Stripe";

    public string? ApiKey { get; set; }

    public string ApiBase { get; set; } = "https://api.stripe.com";

    public string MeterEventsBase { get; set; } = "https://meter-events.stripe.com";

    public bool Enabled => !string.IsNullOrEmpty(ApiKey);

    /// <summary>Run the outbox loop in the background; tests drive <see cref="StripeBillingWorker.RunOnceAsync"/> themselves.</summary>
    public bool BackgroundDispatch { get; set; } = true;

    public TimeSpan DispatchInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How often the previous month's SLA credits are looked at (each is applied once, however often).</summary>
    public TimeSpan CreditInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>An hour is aggregated this long after it ends, so usage reported a little late still lands in version 1.</summary>
    public TimeSpan HourClosedAfter { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Each HTTP request to Stripe; a request that takes longer is an ambiguous outcome.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Requests a second this host sends Stripe at most, evenly spaced, whatever they are for (Stripe allows 25 a second
    /// in test mode and 100 live, per account: with several silos, give each its share). A 429 slows the host below it
    /// for a while.
    /// </summary>
    public double RequestsPerSecond { get; set; } = 20;

    /// <summary>
    /// How long Stripe may take to count an accepted meter event in its event summaries (it aggregates asynchronously).
    /// A summary younger than this after our last request for a figure proves nothing yet: billing waits rather than
    /// resend or dead-letter, and reconciliation calls the difference lag.
    /// </summary>
    public TimeSpan SummaryLag { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Customer+meter lanes sent at once; within a lane one request at a time.</summary>
    public int MaxConcurrentLanes { get; set; } = 8;

    /// <summary>Immediate retries inside one dispatch (Polly), before the row is rescheduled durably.</summary>
    public int InProcessRetries { get; set; } = 2;

    public TimeSpan InProcessRetryDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>A 429 asking to wait longer than this is not waited for in process: the row is rescheduled instead.</summary>
    public TimeSpan MaxInProcessRetryAfter { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>First durable backoff after a failed dispatch; doubles per attempt up to <see cref="MaxRescheduleDelay"/>, with jitter.</summary>
    public TimeSpan RescheduleDelay { get; set; } = TimeSpan.FromSeconds(30);

    public TimeSpan MaxRescheduleDelay { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Attempts after which a row that never got a definite answer goes to the dead letters for finance.</summary>
    public int MaxAttempts { get; set; } = 60;

    public TimeSpan CircuitBreakDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The circuit opens when at least half of the Stripe calls in this window (and at least 20) failed.</summary>
    public TimeSpan CircuitSamplingDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Stripe refuses meter events older than 35 days. An hour closer than this margin to that edge is not sent (a
    /// retry could cross it); it becomes a finance adjustment.
    /// </summary>
    public TimeSpan WindowSafetyMargin { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// How long after a first attempt Stripe's idempotency key and identifier dedupe (24 h each) still make a blind
    /// resend safe. Past it, an ambiguous row is resolved against Stripe's event summaries before anything is resent.
    /// </summary>
    public TimeSpan IdempotencyTrust { get; set; } = TimeSpan.FromHours(23);

    /// <summary>How long a dispatcher owns a lane's head row; another silo takes it over after that.</summary>
    public TimeSpan ClaimDuration { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How Stripe's figures are copied into the database for reconciliation.</summary>
    public StripeSyncOptions Sync { get; set; } = new();

    /// <summary>Meter name (the ledger's dimension) → its Stripe settings. Meters not listed get defaults on first use.</summary>
    public Dictionary<string, StripeMeterOptions> Meters { get; set; } = new(StringComparer.Ordinal);

    public StripeMeterOptions MeterOptions(string meter) =>
        Meters.TryGetValue(meter, out var configured) ? configured : new StripeMeterOptions();

    public string EventName(string meter) => MeterOptions(meter).EventName ?? meter;
}

public sealed class StripeMeterOptions
{
    /// <summary>Stripe's <c>event_name</c>; defaults to the meter's name.</summary>
    public string? EventName { get; set; }

    public string? DisplayName { get; set; }

    /// <summary>The metered price billing this meter: how finance finds the meter's lines on an invoice.</summary>
    public string? PriceId { get; set; }
}

/// <summary><c>Stripe:Sync:*</c>: the background copy of Stripe's summaries, invoices and credits that reconciliation reads.</summary>
public sealed class StripeSyncOptions
{
    /// <summary>Requests a second the sync may send, within the host's <see cref="StripeBillingOptions.RequestsPerSecond"/>: dispatch keeps the rest.</summary>
    public double RequestsPerSecond { get; set; } = 5;

    /// <summary>How often the sync looks for what changed (one host at a time, under a lease).</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Months kept in sync: the current one and the ones before it.</summary>
    public int Months { get; set; } = 2;

    /// <summary>An unchanged figure is read again after this long, in case Stripe changed on its own.</summary>
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromHours(6);

    /// <summary>Invoices are listed again from this long before the newest one seen, as Stripe may show one late.</summary>
    public TimeSpan InvoiceOverlap { get; set; } = TimeSpan.FromDays(2);
}
