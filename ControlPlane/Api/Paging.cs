using System.ComponentModel;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ControlPlane.Errors;
using Microsoft.AspNetCore.Mvc;

namespace ControlPlane.Api;

/// <summary>Which page of a list: how many items, and the position of the last item of the page before (null: the first page).</summary>
[GenerateSerializer, Immutable]
public sealed record PageRequest
{
    public const int DefaultSize = 50;
    public const int MaxSize = 100;

    [Id(0)] public int Size { get; init; } = DefaultSize;
    [Id(1)] public string? After { get; init; }

    public static PageRequest First(int size = DefaultSize) => new() { Size = size };
}

/// <summary>A page of items and, when more follow, the position to continue after.</summary>
[GenerateSerializer, Immutable]
public sealed record Page<T>
{
    [Id(0)] public required IReadOnlyList<T> Items { get; init; }
    [Id(1)] public string? NextAfter { get; init; }

    public Page<TOut> Select<TOut>(Func<T, TOut> map) => new() { Items = [.. Items.Select(map)], NextAfter = NextAfter };
}

/// <summary>A page as the API answers it: the items and an opaque token for the next page (absent on the last).</summary>
public sealed record ItemList<T>(IReadOnlyList<T> Items, string? NextPageToken = null);

/// <summary>
/// The query of every list endpoint: <c>?pageSize=</c> (1–100, default 50) and <c>?pageToken=</c> from the previous
/// page's <c>nextPageToken</c>. Tokens are opaque to clients and bound to the list they came from: a token of another
/// list (another tenant's, another instance's) is not found there.
/// </summary>
public sealed record PageQuery(
    [property: FromQuery(Name = "pageSize"), Description("Items per page, 1–100 (default 50).")] int? PageSize,
    [property: FromQuery(Name = "pageToken"), Description("The nextPageToken of the previous page, unchanged.")] string? PageToken)
{
    public PageRequest For(string list)
    {
        var errors = new Dictionary<string, string[]>();
        if (PageSize is < 1 or > PageRequest.MaxSize)
        {
            errors["pageSize"] = [$"pageSize must be between 1 and {PageRequest.MaxSize} (it is {PageSize})."];
        }

        string? after = null;
        if (PageToken is { Length: > 0 } token)
        {
            if (!Paging.TryRead(token, out var tokenList, out var position))
            {
                errors["pageToken"] = ["pageToken is not a token this API gave out. Pass the nextPageToken of the previous page unchanged."];
            }
            else if (tokenList != list)
            {
                // A token of another list, e.g. another tenant's: that page does not exist here.
                throw Problems.NotFound("page", token);
            }
            else
            {
                after = position;
            }
        }

        RequestValidationException.ThrowIfAny(errors);
        return new PageRequest { Size = PageSize ?? PageRequest.DefaultSize, After = after };
    }

    public ItemList<T> Answer<T>(string list, Page<T> page) =>
        new(page.Items, page.NextAfter is null ? null : Paging.Token(list, page.NextAfter));
}

public static class Paging
{
    /// <summary>
    /// The page of <paramref name="ordered"/> (already in the list's stable order) that follows <see cref="PageRequest.After"/>.
    /// Positions are sortable keys (<see cref="Paging.Key(DateTimeOffset, string)"/>), so a page stays right when items
    /// before it were removed meanwhile.
    /// </summary>
    public static Page<T> Page<T>(IEnumerable<T> ordered, Func<T, string> key, bool descending, PageRequest request)
    {
        var after = request.After;
        var rest = after is null
            ? ordered
            : ordered.Where(item => descending
                ? string.CompareOrdinal(key(item), after) < 0
                : string.CompareOrdinal(key(item), after) > 0);
        return Fetched(rest.Take(request.Size + 1).ToList(), request.Size, key);
    }

    /// <summary>
    /// A page from what a query fetched when asked for one item more than <paramref name="size"/>: that extra item only
    /// says another page follows, after the last item kept.
    /// </summary>
    public static Page<T> Fetched<T>(List<T> fetched, int size, Func<T, string> key) =>
        fetched.Count > size
            ? new Page<T> { Items = fetched[..size], NextAfter = key(fetched[size - 1]) }
            : new Page<T> { Items = fetched };

    /// <summary>A position that sorts like the items: by time, then by id.</summary>
    public static string Key(DateTimeOffset at, string id) => $"{at.UtcTicks.ToString("D20", CultureInfo.InvariantCulture)}|{id}";

    public static string Key(long sequence) => sequence.ToString("D20", CultureInfo.InvariantCulture);

    public static string Token(string list, string after) =>
        Convert.ToBase64String(JsonSerializer.SerializeToUtf8Bytes(new TokenBody(list, after))).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static bool TryRead(string token, out string list, out string after)
    {
        (list, after) = ("", "");
        try
        {
            var base64 = token.Replace('-', '+').Replace('_', '/');
            base64 += new string('=', (4 - base64.Length % 4) % 4);
            var body = JsonSerializer.Deserialize<TokenBody>(Encoding.UTF8.GetString(Convert.FromBase64String(base64)));
            if (body is not { L.Length: > 0, A.Length: > 0 })
            {
                return false;
            }

            (list, after) = (body.L, body.A);
            return true;
        }
        catch (Exception exception) when (exception is FormatException or JsonException)
        {
            return false;
        }
    }

    private sealed record TokenBody(string L, string A);
}
