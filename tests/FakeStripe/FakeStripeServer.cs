using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace FakeStripe;

/// <summary>
/// A stateful Stripe on a free loopback port, spoken to by the real Stripe.net client. It enforces what Stripe
/// documents for the calls billing makes: Bearer authentication, form-encoded bodies, required fields, meter events
/// (an active meter's event_name, an existing customer, <c>payload[value]</c> an integer string, identifiers of at most
/// 100 characters unique over 24 h, timestamps within the past 35 days and at most 5 minutes ahead, one concurrent
/// call per customer and meter), idempotency keys (same key and parameters replay the saved answer for 24 h; other
/// parameters are a 400 idempotency_error; a concurrent duplicate is a 409), event summaries, customers and their
/// search, balance transactions and invoices. <see cref="Faults"/> injects 429s, 500s, resets and hangs.
/// Time is the injected clock, so a simulated month passes in seconds.
/// </summary>
public sealed partial class FakeStripeServer : IAsyncDisposable
{
    public static readonly TimeSpan DedupeWindow = TimeSpan.FromHours(24);
    public static readonly TimeSpan IdempotencyWindow = TimeSpan.FromHours(24);

    private readonly WebApplication _app;
    private readonly TimeProvider _clock;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Customer> _customers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Meter> _meters = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Customer, string EventName), List<MeterEventRecord>> _events = [];
    private readonly Dictionary<string, long> _identifiers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SavedResponse> _idempotency = new(StringComparer.Ordinal);
    private readonly HashSet<string> _idempotencyInFlight = new(StringComparer.Ordinal);
    private readonly HashSet<(string, string)> _meterEventsInFlight = [];
    private readonly Dictionary<string, List<Dictionary<string, object?>>> _balanceTransactions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<Dictionary<string, object?>>> _invoices = new(StringComparer.Ordinal);
    private long _sequence;

    private FakeStripeServer(WebApplication app, TimeProvider clock, string apiKey)
    {
        _app = app;
        _clock = clock;
        ApiKey = apiKey;
    }

    public string ApiKey { get; }

    public string BaseUrl { get; private set; } = "";

    public FakeStripeStats Stats { get; } = new();

    /// <summary>Decides, per request, whether to misbehave. Called before the request runs.</summary>
    public Func<FakeRequest, Fault> Faults { get; set; } = _ => Fault.None;

    /// <summary>How long a meter event holds its customer+meter slot (real time), so concurrent calls can collide.</summary>
    public TimeSpan MeterEventProcessing { get; set; } = TimeSpan.Zero;

    public static async Task<FakeStripeServer> StartAsync(TimeProvider clock, string apiKey = "sk_test_fake_0123456789")
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new FakeStripeServer(app, clock, apiKey);
        app.Run(server.HandleAsync);
        await app.StartAsync();
        server.BaseUrl = app.Urls.First().TrimEnd('/');
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    /// <summary>Every customer, for checks such as "one per tenant".</summary>
    public IReadOnlyList<(string Id, IReadOnlyDictionary<string, string> Metadata)> Customers()
    {
        lock (_gate)
        {
            return [.. _customers.Values.Select(c => (c.Id, (IReadOnlyDictionary<string, string>)new Dictionary<string, string>(c.Metadata)))];
        }
    }

    public IReadOnlyList<(string Id, string EventName)> Meters()
    {
        lock (_gate)
        {
            return [.. _meters.Values.Select(m => (m.Id, m.EventName))];
        }
    }

    /// <summary>The sum Stripe holds per customer and event name, over [start, end) of event timestamps.</summary>
    public IReadOnlyDictionary<(string Customer, string EventName), long> Totals(long start = long.MinValue, long end = long.MaxValue)
    {
        lock (_gate)
        {
            return _events.ToDictionary(e => e.Key, e => e.Value.Where(v => v.Timestamp >= start && v.Timestamp < end).Sum(v => v.Value));
        }
    }

    public long CustomerBalance(string customerId)
    {
        lock (_gate)
        {
            return _customers[customerId].Balance;
        }
    }

    public int BalanceTransactionCount(string customerId)
    {
        lock (_gate)
        {
            return _balanceTransactions.GetValueOrDefault(customerId)?.Count ?? 0;
        }
    }

    /// <summary>Records events as if sent, for benchmarks that need Stripe's side filled without a million HTTP calls.</summary>
    public void SeedMeterEvents(string customerId, string eventName, IEnumerable<(long Timestamp, long Value)> events)
    {
        lock (_gate)
        {
            var list = EventList(customerId, eventName);
            list.AddRange(events.Select(e => new MeterEventRecord($"seed_{++_sequence}", e.Value, e.Timestamp)));
        }
    }

    /// <summary>
    /// Stripe finalizing the period's invoice of a customer: one line per metered price, its quantity what Stripe
    /// counted for the price's meter in [start, end) at this moment. Usage arriving later is not on it.
    /// </summary>
    public string FinalizeInvoice(string customerId, long periodStart, long periodEnd, IReadOnlyDictionary<string, string> priceIdByEventName)
    {
        lock (_gate)
        {
            var now = _clock.GetUtcNow().ToUnixTimeSeconds();
            var id = NewId("in");
            var lines = priceIdByEventName.Select(p => new Dictionary<string, object?>
            {
                ["id"] = NewId("il"),
                ["object"] = "line_item",
                ["amount"] = 0,
                ["currency"] = "usd",
                ["description"] = $"Usage of {p.Key}",
                ["invoice"] = id,
                ["livemode"] = false,
                ["metadata"] = new Dictionary<string, string>(),
                ["period"] = new Dictionary<string, long> { ["start"] = periodStart, ["end"] = periodEnd },
                ["pricing"] = new Dictionary<string, object?>
                {
                    ["type"] = "price_details",
                    ["price_details"] = new Dictionary<string, object?> { ["price"] = p.Value, ["product"] = "prod_" + p.Key },
                    ["unit_amount_decimal"] = "0",
                },
                ["quantity"] = _events.GetValueOrDefault((customerId, p.Key))?.Where(e => e.Timestamp >= periodStart && e.Timestamp < periodEnd).Sum(e => e.Value) ?? 0,
            }).ToList();
            var invoice = new Dictionary<string, object?>
            {
                ["id"] = id,
                ["object"] = "invoice",
                ["customer"] = customerId,
                ["created"] = now,
                ["currency"] = "usd",
                ["livemode"] = false,
                ["period_start"] = periodStart,
                ["period_end"] = periodEnd,
                ["status"] = "open",
                ["status_transitions"] = new Dictionary<string, object?> { ["finalized_at"] = now },
                ["amount_due"] = 0,
                ["total"] = 0,
                ["lines"] = new Dictionary<string, object?> { ["object"] = "list", ["data"] = lines, ["has_more"] = false, ["url"] = $"/v1/invoices/{id}/lines" },
            };
            Add(_invoices, customerId, invoice);
            return id;
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        Stats.Request();
        var request = context.Request;
        if (request.Headers.Authorization.ToString() != "Bearer " + ApiKey)
        {
            await WriteAsync(context, new Answer(401, Error("invalid_request_error", null, "Invalid API Key provided.", null)));
            return;
        }

        var form = new Dictionary<string, string>(StringComparer.Ordinal);
        if (HttpMethods.IsPost(request.Method))
        {
            if (!request.HasFormContentType || request.ContentType?.StartsWith("application/x-www-form-urlencoded", StringComparison.Ordinal) != true)
            {
                await WriteAsync(context, new Answer(400, Error("invalid_request_error", null, "Request bodies must be application/x-www-form-urlencoded.", null)));
                return;
            }

            foreach (var (key, value) in await request.ReadFormAsync())
            {
                form[key] = value.ToString();
            }
        }

        var query = request.Query.ToDictionary(q => q.Key, q => q.Value.ToString(), StringComparer.Ordinal);
        var fault = Faults(new FakeRequest(request.Method, request.Path.Value ?? "", HttpMethods.IsPost(request.Method) ? form : query));
        switch (fault.Kind)
        {
            case FaultKind.RateLimited:
                Stats.Injected();
                context.Response.Headers.RetryAfter = fault.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
                await WriteAsync(context, new Answer(429, Error("invalid_request_error", "rate_limit", "Too many requests hit the API too quickly.", null)));
                return;
            case FaultKind.ServerError:
                Stats.Injected();
                await WriteAsync(context, new Answer(500, Error("api_error", null, "An unknown error occurred.", null)));
                return;
        }

        var answer = HttpMethods.IsPost(request.Method)
            ? await PostAsync(context, request.Path.Value ?? "", form)
            : Get(request.Path.Value ?? "", query);
        if (fault.Kind is FaultKind.ResetAfterProcessing)
        {
            Stats.Injected();
            context.Abort();
            return;
        }

        if (fault.Kind is FaultKind.HangAfterProcessing)
        {
            Stats.Injected();
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
            }

            context.Abort();
            return;
        }

        if (answer.Replayed)
        {
            context.Response.Headers["Idempotent-Replayed"] = "true";
        }

        await WriteAsync(context, answer);
    }

    /// <summary>Idempotency as Stripe documents it: only requests that ran successfully are saved, for 24 hours.</summary>
    private async Task<Answer> PostAsync(HttpContext context, string path, Dictionary<string, string> form)
    {
        string? key = context.Request.Headers["Idempotency-Key"];
        if (string.IsNullOrEmpty(key))
        {
            return await ExecutePostAsync(path, form);
        }

        var fingerprint = Fingerprint(path, form);
        lock (_gate)
        {
            var now = _clock.GetUtcNow().ToUnixTimeSeconds();
            if (_idempotency.TryGetValue(key, out var saved) && now - saved.At < (long)IdempotencyWindow.TotalSeconds)
            {
                if (saved.Fingerprint != fingerprint)
                {
                    return new Answer(400, Error("idempotency_error", null, $"Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request.", null));
                }

                Stats.Replayed();
                return saved.Answer with { Replayed = true };
            }

            if (!_idempotencyInFlight.Add(key))
            {
                return new Answer(409, Error("idempotency_error", null, "There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through). Please try again later.", null));
            }
        }

        try
        {
            var answer = await ExecutePostAsync(path, form);
            if (answer.Status is >= 200 and < 300)
            {
                lock (_gate)
                {
                    _idempotency[key] = new SavedResponse(fingerprint, answer, _clock.GetUtcNow().ToUnixTimeSeconds());
                }
            }

            return answer;
        }
        finally
        {
            lock (_gate)
            {
                _idempotencyInFlight.Remove(key);
            }
        }
    }

    private async Task<Answer> ExecutePostAsync(string path, Dictionary<string, string> form)
    {
        if (path == "/v1/billing/meter_events")
        {
            return await CreateMeterEventAsync(form);
        }

        lock (_gate)
        {
            return path switch
            {
                "/v1/customers" => CreateCustomer(form),
                "/v1/billing/meters" => CreateMeter(form),
                _ when BalanceTransactionsPath().Match(path) is { Success: true } m => CreateBalanceTransaction(m.Groups[1].Value, form),
                _ => NotFound(path),
            };
        }
    }

    private Answer Get(string path, Dictionary<string, string> query)
    {
        lock (_gate)
        {
            return path switch
            {
                "/v1/customers/search" => SearchCustomers(query),
                "/v1/billing/meters" => Page(_meters.Values.Where(m => !query.TryGetValue("status", out var s) || m.Status == s).Select(MeterJson), query, "/v1/billing/meters"),
                "/v1/invoices" => ListInvoices(query),
                _ when EventSummariesPath().Match(path) is { Success: true } m => EventSummaries(m.Groups[1].Value, query),
                _ when BalanceTransactionsPath().Match(path) is { Success: true } m => Page(_balanceTransactions.GetValueOrDefault(m.Groups[1].Value) ?? [], query, path),
                _ when CustomerPath().Match(path) is { Success: true } m => _customers.TryGetValue(m.Groups[1].Value, out var c) ? Ok(CustomerJson(c)) : Missing("customer", m.Groups[1].Value),
                _ when MeterPath().Match(path) is { Success: true } m => _meters.TryGetValue(m.Groups[1].Value, out var meter) ? Ok(MeterJson(meter)) : Missing("billing.meter", m.Groups[1].Value),
                _ => NotFound(path),
            };
        }
    }

    private async Task<Answer> CreateMeterEventAsync(Dictionary<string, string> form)
    {
        var eventName = form.GetValueOrDefault("event_name");
        var customer = form.GetValueOrDefault("payload[stripe_customer_id]");
        var value = form.GetValueOrDefault("payload[value]");
        if (string.IsNullOrEmpty(eventName))
        {
            return Invalid("parameter_missing", "Missing required param: event_name.", "event_name");
        }

        if (string.IsNullOrEmpty(customer))
        {
            return Invalid("parameter_missing", "Missing required param: payload[stripe_customer_id].", "payload[stripe_customer_id]");
        }

        if (string.IsNullOrEmpty(value))
        {
            return Invalid("parameter_missing", "Missing required param: payload[value].", "payload[value]");
        }

        // Sum meters take whole numbers; a negative one corrects earlier over-reporting.
        if (!IntegerString().IsMatch(value) || !long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var quantity))
        {
            return Invalid("parameter_invalid_integer", $"Invalid integer: {value}. payload[value] must be an integer string.", "payload[value]");
        }

        var identifier = form.GetValueOrDefault("identifier");
        if (identifier is { Length: > 100 })
        {
            return Invalid("string_length_exceeded", "identifier must be at most 100 characters.", "identifier");
        }

        var now = _clock.GetUtcNow().ToUnixTimeSeconds();
        var timestamp = now;
        if (form.TryGetValue("timestamp", out var rawTimestamp) && !long.TryParse(rawTimestamp, NumberStyles.None, CultureInfo.InvariantCulture, out timestamp))
        {
            return Invalid("parameter_invalid_integer", "Invalid timestamp.", "timestamp");
        }

        if (timestamp < now - (long)TimeSpan.FromDays(35).TotalSeconds || timestamp > now + 300)
        {
            return Invalid("timestamp_out_of_range", "Timestamp must be within the past 35 calendar days or up to 5 minutes in the future.", "timestamp");
        }

        lock (_gate)
        {
            if (!_meters.Values.Any(m => m.EventName == eventName && m.Status == "active"))
            {
                return Invalid("resource_missing", $"No active meter was found with event_name '{eventName}'.", "event_name");
            }

            if (!_customers.ContainsKey(customer))
            {
                return Invalid("resource_missing", $"No such customer: '{customer}'.", "payload[stripe_customer_id]");
            }

            if (!_meterEventsInFlight.Add((customer, eventName)))
            {
                Stats.ConcurrencyRejected();
                return new Answer(429, Error("invalid_request_error", "rate_limit", $"Too many concurrent requests for customer '{customer}' and meter '{eventName}'. Send one at a time.", null));
            }
        }

        try
        {
            if (MeterEventProcessing > TimeSpan.Zero)
            {
                await Task.Delay(MeterEventProcessing);
            }

            lock (_gate)
            {
                identifier ??= NewId("evt");
                if (_identifiers.TryGetValue(identifier, out var seenAt) && now - seenAt < (long)DedupeWindow.TotalSeconds)
                {
                    Stats.Duplicate();
                    return Invalid(null, $"An event already exists with identifier {identifier}.", "identifier");
                }

                _identifiers[identifier] = now;
                EventList(customer, eventName).Add(new MeterEventRecord(identifier, quantity, timestamp));
                return Ok(new Dictionary<string, object?>
                {
                    ["object"] = "billing.meter_event",
                    ["created"] = now,
                    ["event_name"] = eventName,
                    ["identifier"] = identifier,
                    ["livemode"] = false,
                    ["payload"] = new Dictionary<string, string> { ["stripe_customer_id"] = customer, ["value"] = value },
                    ["timestamp"] = timestamp,
                });
            }
        }
        finally
        {
            lock (_gate)
            {
                _meterEventsInFlight.Remove((customer, eventName));
            }
        }
    }

    private Answer EventSummaries(string meterId, Dictionary<string, string> query)
    {
        if (!_meters.TryGetValue(meterId, out var meter))
        {
            return Missing("billing.meter", meterId);
        }

        if (!query.TryGetValue("customer", out var customer) || string.IsNullOrEmpty(customer))
        {
            return Invalid("parameter_missing", "Missing required param: customer.", "customer");
        }

        if (!TryTime(query, "start_time", out var start) || !TryTime(query, "end_time", out var end))
        {
            return Invalid("parameter_missing", "start_time and end_time are required Unix timestamps.", "start_time");
        }

        var hourly = query.GetValueOrDefault("value_grouping_window") == "hour";
        var alignment = hourly ? 3600 : 60;
        if (start % alignment != 0 || end % alignment != 0 || start >= end)
        {
            return Invalid("parameter_invalid", $"start_time and end_time must be aligned to {(hourly ? "hour" : "minute")} boundaries, start before end.", "start_time");
        }

        var events = _events.GetValueOrDefault((customer, meter.EventName)) ?? [];
        var windows = hourly
            ? Enumerable.Range(0, (int)((end - start) / 3600)).Select(i => (start + (i * 3600L), start + ((i + 1) * 3600L)))
            : [(start, end)];
        var data = windows.Select(w => (object)new Dictionary<string, object?>
        {
            ["id"] = NewId("mtrusg"),
            ["object"] = "billing.meter_event_summary",
            ["aggregated_value"] = events.Where(e => e.Timestamp >= w.Item1 && e.Timestamp < w.Item2).Sum(e => e.Value),
            ["start_time"] = w.Item1,
            ["end_time"] = w.Item2,
            ["livemode"] = false,
            ["meter"] = meterId,
        }).ToList();
        return Ok(new Dictionary<string, object?> { ["object"] = "list", ["data"] = data, ["has_more"] = false, ["url"] = $"/v1/billing/meters/{meterId}/event_summaries" });
    }

    private Answer CreateCustomer(Dictionary<string, string> form)
    {
        var customer = new Customer(NewId("cus"), form.GetValueOrDefault("name"), form.GetValueOrDefault("email"), form.GetValueOrDefault("description"), Metadata(form), _clock.GetUtcNow().ToUnixTimeSeconds());
        _customers[customer.Id] = customer;
        return Ok(CustomerJson(customer));
    }

    /// <summary>Only the query billing uses: <c>metadata['key']:'value'</c>.</summary>
    private Answer SearchCustomers(Dictionary<string, string> query)
    {
        var match = MetadataQuery().Match(query.GetValueOrDefault("query") ?? "");
        if (!match.Success)
        {
            return Invalid("parameter_invalid", "This fake understands only queries of the form metadata['key']:'value'.", "query");
        }

        var data = _customers.Values
            .Where(c => c.Metadata.GetValueOrDefault(match.Groups[1].Value) == match.Groups[2].Value)
            .OrderBy(c => c.Created).Select(c => (object)CustomerJson(c)).ToList();
        return Ok(new Dictionary<string, object?> { ["object"] = "search_result", ["data"] = data, ["has_more"] = false, ["next_page"] = null, ["url"] = "/v1/customers/search" });
    }

    private Answer CreateMeter(Dictionary<string, string> form)
    {
        var eventName = form.GetValueOrDefault("event_name");
        if (string.IsNullOrEmpty(eventName) || string.IsNullOrEmpty(form.GetValueOrDefault("display_name")) || string.IsNullOrEmpty(form.GetValueOrDefault("default_aggregation[formula]")))
        {
            return Invalid("parameter_missing", "display_name, event_name and default_aggregation[formula] are required.", "event_name");
        }

        if (_meters.Values.Any(m => m.EventName == eventName && m.Status == "active"))
        {
            return Invalid("resource_already_exists", $"An active meter with event_name '{eventName}' already exists.", "event_name");
        }

        var meter = new Meter(NewId("mtr"), form["display_name"], eventName, "active", _clock.GetUtcNow().ToUnixTimeSeconds());
        _meters[meter.Id] = meter;
        return Ok(MeterJson(meter));
    }

    private Answer CreateBalanceTransaction(string customerId, Dictionary<string, string> form)
    {
        if (!_customers.TryGetValue(customerId, out var customer))
        {
            return Missing("customer", customerId);
        }

        if (!long.TryParse(form.GetValueOrDefault("amount"), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var amount) || amount == 0)
        {
            return Invalid("parameter_invalid_integer", "amount must be a non-zero integer.", "amount");
        }

        if (form.GetValueOrDefault("currency") is not { Length: 3 } currency)
        {
            return Invalid("parameter_missing", "Missing required param: currency.", "currency");
        }

        customer.Balance += amount;
        var transaction = new Dictionary<string, object?>
        {
            ["id"] = NewId("cbtxn"),
            ["object"] = "customer_balance_transaction",
            ["amount"] = amount,
            ["created"] = _clock.GetUtcNow().ToUnixTimeSeconds(),
            ["credit_note"] = null,
            ["currency"] = currency,
            ["customer"] = customerId,
            ["description"] = form.GetValueOrDefault("description"),
            ["ending_balance"] = customer.Balance,
            ["invoice"] = null,
            ["livemode"] = false,
            ["metadata"] = Metadata(form),
            ["type"] = "adjustment",
        };
        Add(_balanceTransactions, customerId, transaction);
        return Ok(transaction);
    }

    private Answer ListInvoices(Dictionary<string, string> query)
    {
        var invoices = query.TryGetValue("customer", out var customer)
            ? _invoices.GetValueOrDefault(customer) ?? []
            : _invoices.Values.SelectMany(i => i).ToList();
        var from = query.TryGetValue("created[gte]", out var gte) ? long.Parse(gte, CultureInfo.InvariantCulture) : long.MinValue;
        return Page(invoices.Where(i => (long)i["created"]! >= from), query, "/v1/invoices");
    }

    private static Answer Page(IEnumerable<Dictionary<string, object?>> items, Dictionary<string, string> query, string url)
    {
        var limit = query.TryGetValue("limit", out var l) && int.TryParse(l, CultureInfo.InvariantCulture, out var n) ? Math.Clamp(n, 1, 100) : 10;
        var all = items.ToList();
        var from = query.TryGetValue("starting_after", out var after) ? all.FindIndex(i => (string?)i["id"] == after) + 1 : 0;
        var page = all.Skip(from).Take(limit).Cast<object>().ToList();
        return Ok(new Dictionary<string, object?> { ["object"] = "list", ["data"] = page, ["has_more"] = from + page.Count < all.Count, ["url"] = url });
    }

    private static bool TryTime(Dictionary<string, string> query, string name, out long value)
    {
        value = 0;
        return query.TryGetValue(name, out var raw) && long.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    private List<MeterEventRecord> EventList(string customer, string eventName)
    {
        if (!_events.TryGetValue((customer, eventName), out var list))
        {
            _events[(customer, eventName)] = list = [];
        }

        return list;
    }

    private static void Add(Dictionary<string, List<Dictionary<string, object?>>> lists, string key, Dictionary<string, object?> item)
    {
        if (!lists.TryGetValue(key, out var list))
        {
            lists[key] = list = [];
        }

        list.Add(item);
    }

    private static Dictionary<string, string> Metadata(Dictionary<string, string> form) =>
        form.Where(f => f.Key.StartsWith("metadata[", StringComparison.Ordinal) && f.Key.EndsWith(']'))
            .ToDictionary(f => f.Key["metadata[".Length..^1], f => f.Value, StringComparer.Ordinal);

    private static Dictionary<string, object?> CustomerJson(Customer c) => new()
    {
        ["id"] = c.Id,
        ["object"] = "customer",
        ["balance"] = c.Balance,
        ["created"] = c.Created,
        ["currency"] = "usd",
        ["delinquent"] = false,
        ["description"] = c.Description,
        ["email"] = c.Email,
        ["invoice_prefix"] = c.Id[^7..].ToUpperInvariant(),
        ["livemode"] = false,
        ["metadata"] = c.Metadata,
        ["name"] = c.Name,
        ["next_invoice_sequence"] = 1,
        ["preferred_locales"] = Array.Empty<string>(),
        ["tax_exempt"] = "none",
    };

    private static Dictionary<string, object?> MeterJson(Meter m) => new()
    {
        ["id"] = m.Id,
        ["object"] = "billing.meter",
        ["created"] = m.Created,
        ["customer_mapping"] = new Dictionary<string, string> { ["event_payload_key"] = "stripe_customer_id", ["type"] = "by_id" },
        ["default_aggregation"] = new Dictionary<string, string> { ["formula"] = "sum" },
        ["display_name"] = m.DisplayName,
        ["event_name"] = m.EventName,
        ["event_time_window"] = null,
        ["livemode"] = false,
        ["status"] = m.Status,
        ["status_transitions"] = new Dictionary<string, object?> { ["deactivated_at"] = null },
        ["updated"] = m.Created,
        ["value_settings"] = new Dictionary<string, string> { ["event_payload_key"] = "value" },
    };

    private string NewId(string prefix) =>
        $"{prefix}_{Interlocked.Increment(ref _sequence):x6}{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(5))}";

    private static string Fingerprint(string path, Dictionary<string, string> form) =>
        path + "?" + string.Join("&", form.OrderBy(f => f.Key, StringComparer.Ordinal).Select(f => $"{f.Key}={f.Value}"));

    private static Answer Ok(Dictionary<string, object?> body) => new(200, body);

    private static Answer Invalid(string? code, string message, string? param) => new(400, Error("invalid_request_error", code, message, param));

    private static Answer Missing(string what, string id) => new(404, Error("invalid_request_error", "resource_missing", $"No such {what}: '{id}'", "id"));

    private static Answer NotFound(string path) => new(404, Error("invalid_request_error", null, $"Unrecognized request URL ({path}).", null));

    private static Dictionary<string, object?> Error(string type, string? code, string message, string? param) => new()
    {
        ["error"] = new Dictionary<string, object?> { ["type"] = type, ["code"] = code, ["message"] = message, ["param"] = param },
    };

    private static async Task WriteAsync(HttpContext context, Answer answer)
    {
        context.Response.StatusCode = answer.Status;
        context.Response.ContentType = "application/json";
        context.Response.Headers["Request-Id"] = "req_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(7));
        if (answer.Status == (int)HttpStatusCode.TooManyRequests || answer.Status >= 500)
        {
            context.Response.Headers["Stripe-Should-Retry"] = "true";
        }

        await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(answer.Body)));
    }

    [GeneratedRegex("^-?[0-9]{1,18}$")]
    private static partial Regex IntegerString();

    [GeneratedRegex(@"^metadata\['([A-Za-z0-9_]+)'\]:'([A-Za-z0-9_-]+)'$")]
    private static partial Regex MetadataQuery();

    [GeneratedRegex("^/v1/customers/([A-Za-z0-9_]+)/balance_transactions$")]
    private static partial Regex BalanceTransactionsPath();

    [GeneratedRegex("^/v1/billing/meters/([A-Za-z0-9_]+)/event_summaries$")]
    private static partial Regex EventSummariesPath();

    [GeneratedRegex("^/v1/customers/([A-Za-z0-9_]+)$")]
    private static partial Regex CustomerPath();

    [GeneratedRegex("^/v1/billing/meters/([A-Za-z0-9_]+)$")]
    private static partial Regex MeterPath();

    private sealed record Answer(int Status, Dictionary<string, object?> Body, bool Replayed = false);

    private sealed record SavedResponse(string Fingerprint, Answer Answer, long At);

    private sealed record MeterEventRecord(string Identifier, long Value, long Timestamp);

    private sealed record Meter(string Id, string DisplayName, string EventName, string Status, long Created);

    private sealed class Customer(string id, string? name, string? email, string? description, Dictionary<string, string> metadata, long created)
    {
        public string Id { get; } = id;
        public string? Name { get; } = name;
        public string? Email { get; } = email;
        public string? Description { get; } = description;
        public Dictionary<string, string> Metadata { get; } = metadata;
        public long Created { get; } = created;
        public long Balance { get; set; }
    }
}
