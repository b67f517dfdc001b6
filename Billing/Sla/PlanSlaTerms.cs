namespace Billing.Sla;

/// <summary>
/// A plan's SLA (configuration <c>Plans:Definitions:&lt;plan&gt;:Sla</c>): the monthly uptime it promises and the share of
/// the month's charge credited when it is missed. A plan without <see cref="TargetPercent"/> promises nothing.
/// </summary>
public sealed class PlanSlaTerms
{
    public decimal? TargetPercent { get; set; }

    /// <summary>A month below several thresholds earns the largest of their credits.</summary>
    public List<SlaCreditTier> CreditTiers { get; set; } = [];

    /// <summary>The tier a month's uptime falls in, or null when the plan has no SLA or the uptime met every threshold.</summary>
    public SlaCreditTier? TierFor(decimal uptimePercent) =>
        TargetPercent is null
            ? null
            : CreditTiers.Where(tier => uptimePercent < tier.BelowPercent).MaxBy(tier => tier.CreditPercent);

    /// <summary>What is wrong with these terms, for the start-up check of the plan named <paramref name="plan"/>.</summary>
    public IEnumerable<string> Problems(string plan)
    {
        if (TargetPercent is null)
        {
            if (CreditTiers.Count > 0)
            {
                yield return $"Plan '{plan}' has SLA credit tiers but no Sla:TargetPercent.";
            }

            yield break;
        }

        if (TargetPercent is <= 0 or > 100 || HasMoreThanFourDecimals(TargetPercent.Value))
        {
            yield return $"Plan '{plan}': Sla:TargetPercent must be within (0, 100] with at most 4 decimals.";
        }

        foreach (var tier in CreditTiers)
        {
            // Uptime is truncated to 4 decimals; thresholds with no more decimals give the same tier as the exact ratio.
            if (tier.BelowPercent is <= 0 or > 100 || HasMoreThanFourDecimals(tier.BelowPercent) || tier.BelowPercent > TargetPercent)
            {
                yield return $"Plan '{plan}': a credit tier's BelowPercent ({tier.BelowPercent}) must be within (0, target] with at most 4 decimals.";
            }

            if (tier.CreditPercent is <= 0 or > 100)
            {
                yield return $"Plan '{plan}': a credit tier's CreditPercent ({tier.CreditPercent}) must be within (0, 100].";
            }
        }
    }

    private static bool HasMoreThanFourDecimals(decimal value) => decimal.Truncate(value * 10_000) != value * 10_000;
}

public sealed class SlaCreditTier
{
    /// <summary>The tier applies when the month's uptime is strictly below this.</summary>
    public decimal BelowPercent { get; set; }

    /// <summary>Share of the month's charge credited, e.g. 10 for 10 %.</summary>
    public decimal CreditPercent { get; set; }
}

/// <summary>
/// A plan's prices (configuration <c>Plans:Definitions:&lt;plan&gt;:Prices</c>): per instance size, what one hour in
/// Running costs, in the currency's minor unit. The SLA credit is a share of this charge for the month.
/// </summary>
public sealed class PlanPrices
{
    /// <summary>ISO 4217, lower case as Stripe writes it.</summary>
    public string Currency { get; set; } = "usd";

    public Dictionary<string, long> HourlyMinorUnits { get; set; } = new(StringComparer.Ordinal);

    /// <summary>The charge for <paramref name="secondsBySize"/> of Running, rounded half away from zero to a whole minor unit.</summary>
    public long ChargeFor(IReadOnlyDictionary<string, long> secondsBySize) =>
        ChargeFor(secondsBySize.ToDictionary(size => size.Key, size => (decimal)size.Value, StringComparer.Ordinal));

    /// <summary>The charge for <paramref name="secondsBySize"/> of Running, which may be shares of seconds (a prorated hour), rounded once.</summary>
    public long ChargeFor(IReadOnlyDictionary<string, decimal> secondsBySize)
    {
        decimal total = 0;
        foreach (var (size, seconds) in secondsBySize)
        {
            total += seconds * (decimal)HourlyMinorUnits.GetValueOrDefault(size);
        }

        return (long)decimal.Round(total / 3600m, MidpointRounding.AwayFromZero);
    }
}

/// <summary>A tenant's plan as billing sees it.</summary>
public sealed record BillingPlan(string Name, PlanSlaTerms Sla, PlanPrices Prices);
