namespace ControlPlane.Tenants;

/// <summary>The commercial plans a tenant can be on (section <c>Plans</c>).</summary>
public sealed class PlanOptions
{
    public const string SectionName = "Plans";

    public string DefaultPlan { get; set; } = "developer";

    public Dictionary<string, PlanDefinition> Definitions { get; set; } = new(StringComparer.Ordinal);
}

public sealed class PlanDefinition
{
    public string DisplayName { get; set; } = "";

    /// <summary>How many instances (not deleted) the tenant may have at once.</summary>
    public int MaxInstances { get; set; }
}
