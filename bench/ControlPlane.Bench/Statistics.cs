namespace ControlPlane.Bench;

internal static class Statistics
{
    /// <summary>The middle value; the mean of the two middle ones for an even count.</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN
            : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2]
            : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    public static TimeSpan Median(IEnumerable<TimeSpan> values)
    {
        var sorted = Sorted(values);
        var middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    /// <summary>Nearest rank: the smallest value that at least 95% of the values do not exceed (the 19th of 20).</summary>
    public static TimeSpan P95(IEnumerable<TimeSpan> values)
    {
        var sorted = Sorted(values);
        return sorted[(int)Math.Ceiling(0.95 * sorted.Length) - 1];
    }

    private static TimeSpan[] Sorted(IEnumerable<TimeSpan> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length > 0 ? sorted : throw new InvalidOperationException("No values to summarize.");
    }
}
