using System.Globalization;
using System.Text.RegularExpressions;

namespace FakeStripe;

/// <summary>Stripe's JSON shapes: answers, errors, lists and the objects billing reads.</summary>
public sealed partial class FakeStripeServer
{
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

    private static long Bound(Dictionary<string, string> query, string name, long otherwise) =>
        query.TryGetValue(name, out var raw) && long.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : otherwise;

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

    private static Answer Ok(Dictionary<string, object?> body) => new(200, body);

    private static Answer Invalid(string? code, string message, string? param) => new(400, Error("invalid_request_error", code, message, param));

    private static Answer Missing(string what, string id) => new(404, Error("invalid_request_error", "resource_missing", $"No such {what}: '{id}'", "id"));

    private static Answer NotFound(string path) => new(404, Error("invalid_request_error", null, $"Unrecognized request URL ({path}).", null));

    private static Answer ServerFailure() => new(500, Error("api_error", null, "An unknown error occurred.", null));

    private static Dictionary<string, object?> Error(string type, string? code, string message, string? param) => new()
    {
        ["error"] = new Dictionary<string, object?> { ["type"] = type, ["code"] = code, ["message"] = message, ["param"] = param },
    };

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

    [GeneratedRegex("^/v1/invoices/([A-Za-z0-9_]+)$")]
    private static partial Regex InvoicePath();

    /// <summary>An answer; <see cref="Replayed"/> when it is the saved answer of an earlier request with the same idempotency key.</summary>
    private sealed record Answer(int Status, Dictionary<string, object?> Body, bool Replayed = false);
}
