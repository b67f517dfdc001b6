using System.Globalization;

namespace FakeStripe;

/// <summary>
/// Customers, their search and their balance transactions. Search trails writes: a new customer is found only
/// <see cref="FakeStripeOptions.SearchLag"/> after it was created (Stripe: "don't use search for read-after-write
/// flows"); the list endpoint sees it at once.
/// </summary>
public sealed partial class FakeStripeServer
{
    private readonly Dictionary<string, Customer> _customers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<Dictionary<string, object?>>> _balanceTransactions = new(StringComparer.Ordinal);

    /// <summary>Every customer, for checks such as "one per tenant".</summary>
    public IReadOnlyList<(string Id, IReadOnlyDictionary<string, string> Metadata)> Customers()
    {
        lock (_gate)
        {
            return [.. _customers.Values.Select(c => (c.Id, (IReadOnlyDictionary<string, string>)new Dictionary<string, string>(c.Metadata)))];
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

    private Answer CreateCustomer(Dictionary<string, string> form)
    {
        var customer = new Customer(NewId("cus"), form.GetValueOrDefault("name"), form.GetValueOrDefault("email"), form.GetValueOrDefault("description"), Metadata(form), Now);
        _customers[customer.Id] = customer;
        return Ok(CustomerJson(customer));
    }

    /// <summary>Newest first, as Stripe lists; <c>created[gte]</c>, <c>created[lte]</c> and cursor paging.</summary>
    private Answer ListCustomers(Dictionary<string, string> query)
    {
        var from = Bound(query, "created[gte]", long.MinValue);
        var to = Bound(query, "created[lte]", long.MaxValue);
        var customers = _customers.Values.Where(c => c.Created >= from && c.Created <= to)
            .OrderByDescending(c => c.Created).ThenByDescending(c => c.Id, StringComparer.Ordinal);
        return Page(customers.Select(CustomerJson), query, "/v1/customers");
    }

    /// <summary>Only the query billing uses: <c>metadata['key']:'value'</c>.</summary>
    private Answer SearchCustomers(Dictionary<string, string> query)
    {
        var match = MetadataQuery().Match(query.GetValueOrDefault("query") ?? "");
        if (!match.Success)
        {
            return Invalid("parameter_invalid", "This fake understands only queries of the form metadata['key']:'value'.", "query");
        }

        var indexedUntil = Now - (long)Options.SearchLag.TotalSeconds;
        var data = _customers.Values
            .Where(c => c.Created <= indexedUntil && c.Metadata.GetValueOrDefault(match.Groups[1].Value) == match.Groups[2].Value)
            .OrderBy(c => c.Created).Select(c => (object)CustomerJson(c)).ToList();
        return Ok(new Dictionary<string, object?> { ["object"] = "search_result", ["data"] = data, ["has_more"] = false, ["next_page"] = null, ["url"] = "/v1/customers/search" });
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
            ["created"] = Now,
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
