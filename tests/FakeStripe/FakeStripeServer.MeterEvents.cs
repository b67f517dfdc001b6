using System.Globalization;

namespace FakeStripe;

/// <summary>
/// Billing Meters and v1 meter events: an active meter's event_name, an existing customer, <c>payload[value]</c> an
/// integer string, identifiers of at most 100 characters unique over 24 h, timestamps within the past 35 days and at
/// most 5 minutes ahead, one call at a time per customer and meter. Stripe aggregates events asynchronously: event
/// summaries count an event only <see cref="FakeStripeOptions.SummaryLag"/> after it was accepted.
/// </summary>
public sealed partial class FakeStripeServer
{
    public static readonly TimeSpan DedupeWindow = TimeSpan.FromHours(24);

    private readonly Dictionary<string, Meter> _meters = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Customer, string EventName), List<MeterEventRecord>> _events = [];
    private readonly Dictionary<string, long> _identifiers = new(StringComparer.Ordinal);
    private readonly HashSet<(string, string)> _meterEventsInFlight = [];

    public IReadOnlyList<(string Id, string EventName)> Meters()
    {
        lock (_gate)
        {
            return [.. _meters.Values.Select(m => (m.Id, m.EventName))];
        }
    }

    /// <summary>The sum Stripe holds per customer and event name, over [start, end) of event timestamps, processed or not.</summary>
    public IReadOnlyDictionary<(string Customer, string EventName), long> Totals(long start = long.MinValue, long end = long.MaxValue)
    {
        lock (_gate)
        {
            return _events.ToDictionary(e => e.Key, e => e.Value.Where(v => v.Timestamp >= start && v.Timestamp < end).Sum(v => v.Value));
        }
    }

    /// <summary>The identifiers Stripe accepted for a customer and event name, in the order it accepted them.</summary>
    public IReadOnlyList<string> Identifiers(string customerId, string eventName)
    {
        lock (_gate)
        {
            return [.. (_events.GetValueOrDefault((customerId, eventName)) ?? []).Select(e => e.Identifier)];
        }
    }

    /// <summary>Records events as if sent and long since processed, for benchmarks that need Stripe's side filled without a million calls.</summary>
    public void SeedMeterEvents(string customerId, string eventName, IEnumerable<(long Timestamp, long Value)> events)
    {
        lock (_gate)
        {
            var list = EventList(customerId, eventName);
            list.AddRange(events.Select(e => new MeterEventRecord($"seed_{++_sequence}", e.Value, e.Timestamp, long.MinValue)));
        }
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

        var meter = new Meter(NewId("mtr"), form["display_name"], eventName, "active", Now);
        _meters[meter.Id] = meter;
        return Ok(MeterJson(meter));
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

        var now = Now;
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
            if (Options.MeterEventProcessing > TimeSpan.Zero)
            {
                await Task.Delay(Options.MeterEventProcessing);
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
                EventList(customer, eventName).Add(new MeterEventRecord(identifier, quantity, timestamp, now));
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

        var processed = Processed(customer, meter.EventName);
        var windows = hourly
            ? Enumerable.Range(0, (int)((end - start) / 3600)).Select(i => (start + (i * 3600L), start + ((i + 1) * 3600L)))
            : [(start, end)];
        var data = windows.Select(w => new Dictionary<string, object?>
        {
            ["id"] = NewId("mtrusg"),
            ["object"] = "billing.meter_event_summary",
            ["aggregated_value"] = processed.Where(e => e.Timestamp >= w.Item1 && e.Timestamp < w.Item2).Sum(e => e.Value),
            ["start_time"] = w.Item1,
            ["end_time"] = w.Item2,
            ["livemode"] = false,
            ["meter"] = meterId,
        });
        return Page(data, query, $"/v1/billing/meters/{meterId}/event_summaries");
    }

    /// <summary>The events of a customer's meter that Stripe's aggregation has caught up with.</summary>
    private IEnumerable<MeterEventRecord> Processed(string customer, string eventName)
    {
        var visibleUntil = Now - (long)Options.SummaryLag.TotalSeconds;
        return (_events.GetValueOrDefault((customer, eventName)) ?? []).Where(e => e.ReceivedAt <= visibleUntil);
    }

    private List<MeterEventRecord> EventList(string customer, string eventName)
    {
        if (!_events.TryGetValue((customer, eventName), out var list))
        {
            _events[(customer, eventName)] = list = [];
        }

        return list;
    }

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

    private sealed record MeterEventRecord(string Identifier, long Value, long Timestamp, long ReceivedAt);

    private sealed record Meter(string Id, string DisplayName, string EventName, string Status, long Created);
}
