using Billing.Sla;
using Microsoft.Extensions.Options;

namespace ControlPlane.Tenants;

/// <summary>The commercial plans a tenant can be on (section <c>Plans</c>).</summary>
public sealed class PlanOptions
{
    public const string SectionName = "Plans";

    public string DefaultPlan { get; set; } = "developer";

    public Dictionary<string, PlanDefinition> Definitions { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Why <paramref name="plan"/> cannot be chosen, naming the plans that can; null when it can.</summary>
    public string? UnknownPlanError(string plan) =>
        Definitions.ContainsKey(plan) ? null : $"Unknown plan '{plan}'. Available: {string.Join(", ", Definitions.Keys.Order(StringComparer.Ordinal))}.";
}

public sealed class PlanDefinition
{
    public string DisplayName { get; set; } = "";

    /// <summary>How many instances (not deleted) the tenant may have at once.</summary>
    public int MaxInstances { get; set; }

    /// <summary>The monthly uptime promised and the credits for missing it; none when unset.</summary>
    public PlanSlaTerms Sla { get; set; } = new();

    /// <summary>Hourly prices per instance size: the charge an SLA credit is a share of.</summary>
    public PlanPrices Prices { get; set; } = new();
}

/// <summary>Refuses to start with SLA terms that cannot be applied as written.</summary>
public sealed class PlanOptionsValidator : IValidateOptions<PlanOptions>
{
    public ValidateOptionsResult Validate(string? name, PlanOptions options)
    {
        var failures = options.Definitions.SelectMany(plan => plan.Value.Sla.Problems(plan.Key)).ToList();
        return failures.Count == 0
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail(failures);
    }
}
