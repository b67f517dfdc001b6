using System.Globalization;

namespace Billing.Sla;

/// <summary>A calendar month in UTC, the period an SLA is measured and credited over.</summary>
public readonly record struct SlaMonth(int Year, int Month)
{
    public DateTimeOffset Start => new(Year, Month, 1, 0, 0, 0, TimeSpan.Zero);

    public DateTimeOffset End => Start.AddMonths(1);

    public DateOnly FirstDay => new(Year, Month, 1);

    public static SlaMonth Of(DateTimeOffset time) => new(time.UtcDateTime.Year, time.UtcDateTime.Month);

    /// <summary>Accepts exactly <c>yyyy-MM</c>, from 2000-01 on.</summary>
    public static bool TryParse(string? text, out SlaMonth month)
    {
        month = default;
        if (text is not { Length: 7 } || text[4] != '-'
            || !int.TryParse(text.AsSpan(0, 4), NumberStyles.None, CultureInfo.InvariantCulture, out var year)
            || !int.TryParse(text.AsSpan(5, 2), NumberStyles.None, CultureInfo.InvariantCulture, out var number)
            || year < 2000 || number is < 1 or > 12)
        {
            return false;
        }

        month = new SlaMonth(year, number);
        return true;
    }

    public SlaMonth Previous => SlaMonth.Of(Start.AddDays(-1));

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Year:D4}-{Month:D2}");
}
