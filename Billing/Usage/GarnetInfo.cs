using System.Globalization;

namespace Billing.Usage;

/// <summary>Fields of a Garnet (or Redis) <c>INFO</c> answer: <c>name:value</c> lines under <c># Section</c> headers.</summary>
public static class GarnetInfo
{
    /// <summary>Every <c>name:value</c> field; empty for null. A name seen twice keeps its last value.</summary>
    public static IReadOnlyDictionary<string, string> Fields(string? info)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in (info ?? "").Split('\n', StringSplitOptions.TrimEntries))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0)
            {
                fields[line[..colon]] = line[(colon + 1)..];
            }
        }

        return fields;
    }

    /// <summary>A non-negative integer field, or null when it is missing or not one.</summary>
    public static long? Count(IReadOnlyDictionary<string, string> fields, string name) =>
        fields.TryGetValue(name, out var value) && long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var count) ? count : null;

    /// <summary>The process run's identifier: Garnet draws a new one whenever the process starts.</summary>
    public static string? RunId(IReadOnlyDictionary<string, string> fields) =>
        fields.TryGetValue("run_id", out var runId) && runId.Length > 0 ? runId : null;
}
