namespace FakeStripe;

/// <summary>
/// Invoices, finalized by the test as Stripe would at a period's end. A line's quantity is what Stripe's aggregation had
/// processed for the price's meter by then: usage accepted less than <see cref="FakeStripeOptions.SummaryLag"/> before
/// finalization, or later, is not on it.
/// </summary>
public sealed partial class FakeStripeServer
{
    private readonly Dictionary<string, List<Dictionary<string, object?>>> _invoices = new(StringComparer.Ordinal);

    /// <summary>Stripe finalizing the period's invoice of a customer: one line per metered price.</summary>
    public string FinalizeInvoice(string customerId, long periodStart, long periodEnd, IReadOnlyDictionary<string, string> priceIdByEventName)
    {
        lock (_gate)
        {
            var now = Now;
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
                ["quantity"] = Processed(customerId, p.Key).Where(e => e.Timestamp >= periodStart && e.Timestamp < periodEnd).Sum(e => e.Value),
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

    /// <summary>Newest first; by customer, <c>created[gte]</c> and cursor.</summary>
    private Answer ListInvoices(Dictionary<string, string> query)
    {
        var invoices = query.TryGetValue("customer", out var customer)
            ? _invoices.GetValueOrDefault(customer) ?? []
            : _invoices.Values.SelectMany(i => i);
        var from = Bound(query, "created[gte]", long.MinValue);
        return Page(
            invoices.Where(i => (long)i["created"]! >= from).OrderByDescending(i => (long)i["created"]!).ThenByDescending(i => (string)i["id"]!, StringComparer.Ordinal),
            query,
            "/v1/invoices");
    }

    private Dictionary<string, object?>? FindInvoice(string id) =>
        _invoices.Values.SelectMany(i => i).FirstOrDefault(i => (string?)i["id"] == id);
}
