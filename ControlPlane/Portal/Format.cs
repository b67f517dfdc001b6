using System.Globalization;
using Billing.Usage;

namespace ControlPlane.Portal;

/// <summary>How the portal writes figures: money, uptime, times and meters, the same on every page.</summary>
public static class Format
{
    public static string Money(long minorUnits, string currency) =>
        (minorUnits / 100m).ToString("N2", CultureInfo.InvariantCulture) + " " + currency.ToUpperInvariant();

    public static string Uptime(decimal percent, long eligibleMinutes) =>
        eligibleMinutes == 0 ? "not measured yet" : percent.ToString("0.###", CultureInfo.InvariantCulture) + " %";

    public static string Time(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture);

    /// <summary>Who acted, as a person reads it: the name in an actor such as <c>user:usr-… (ada@example.com)</c>.</summary>
    public static string Actor(string actor)
    {
        var open = actor.IndexOf(" (", StringComparison.Ordinal);
        return open > 0 && actor.EndsWith(')') ? actor[(open + 2)..^1] : actor;
    }

    /// <summary>"3.5 hours small" for instance-seconds meters, "1,204 operations" for the operations meter.</summary>
    public static string Meter(MeterUsage usage) => UsageMeters.SizeOf(usage.Meter) is { } size
        ? $"{(usage.Quantity / 3600m).ToString("0.#", CultureInfo.InvariantCulture)} hours {size}"
        : $"{usage.Quantity.ToString("N0", CultureInfo.InvariantCulture)} {usage.Meter}";
}
