using System.Globalization;

namespace ControlPlane.Api;

/// <summary>Query-string values every list or export reads the same way, with the same messages.</summary>
public static class QueryValues
{
    /// <summary>An ISO 8601 time (UTC when it names no offset); a missing value is null, a bad one adds a field error.</summary>
    public static DateTimeOffset? Time(string name, string? value, IDictionary<string, string[]> errors)
    {
        if (value is null)
        {
            return null;
        }

        if (DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
        {
            return at.ToUniversalTime();
        }

        errors[name] = [$"{name} must be a time in ISO 8601, e.g. 2026-11-01T00:00:00Z."];
        return null;
    }
}
