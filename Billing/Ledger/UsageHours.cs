namespace Billing.Ledger;

/// <summary>Usage is billed in whole UTC hours; the ledger and the outbox name an hour by its start in Unix seconds.</summary>
public static class UsageHours
{
    public const long SecondsPerHour = 3600;

    public static long HourStart(DateTimeOffset at) => Floor(at.ToUnixTimeSeconds());

    public static long Floor(long unixSeconds) => unixSeconds - (((unixSeconds % SecondsPerHour) + SecondsPerHour) % SecondsPerHour);

    public static DateTimeOffset ToTime(long unixSeconds) => DateTimeOffset.FromUnixTimeSeconds(unixSeconds);

    /// <summary>The hours [start, end) of a calendar month, UTC.</summary>
    public static (long Start, long End) Month(DateOnly month)
    {
        var first = new DateTimeOffset(month.Year, month.Month, 1, 0, 0, 0, TimeSpan.Zero);
        return (first.ToUnixTimeSeconds(), first.AddMonths(1).ToUnixTimeSeconds());
    }
}
