using System.Text.Json.Nodes;

namespace ControlPlane.Bench;

/// <summary>
/// Splits one create into where its time went, from the create operation's own timestamps (the grain
/// stamps the operation; the provisioning worker stamps each step as it starts and ends) and the client's.
/// </summary>
internal static class CreatePhases
{
    public const string Between = "between steps (step-done event to next step)";

    public static IReadOnlyList<(string Phase, TimeSpan Duration)> Of(CreateTiming create)
    {
        var operation = create.Operation;
        var createdAt = At(operation["createdAt"]);
        var completedAt = At(operation["completedAt"]);
        var steps = operation["steps"]!.AsArray()
            .Select(step => (Name: (string)step!["name"]!, Started: At(step["startedAt"]), Completed: At(step["completedAt"])))
            .ToList();
        var phases = new List<(string, TimeSpan)>
        {
            ("POST sent to operation recorded", createdAt - create.SentAt),
        };
        if (steps.Count == 0)
        {
            phases.Add(("operation recorded to operation succeeded", completedAt - createdAt));
        }
        else
        {
            phases.Add(("operation recorded to first step", steps[0].Started - createdAt));
            var between = TimeSpan.Zero;
            for (var index = 0; index < steps.Count; index++)
            {
                phases.Add(($"step: {steps[index].Name}", steps[index].Completed - steps[index].Started));
                if (index > 0)
                {
                    between += steps[index].Started - steps[index - 1].Completed;
                }
            }

            phases.Add((Between, between));
            phases.Add(("last step done to operation succeeded", completedAt - steps[^1].Completed));
        }

        phases.Add(("operation succeeded to client sees Running", create.RunningSeenAt - completedAt));
        return phases;
    }

    /// <summary>Whether the operation and every step carry both their times (a step whose events were overtaken does not).</summary>
    public static bool IsFullyTimed(CreateTiming create) =>
        create.Operation["createdAt"] is not null
        && create.Operation["completedAt"] is not null
        && create.Operation["steps"]!.AsArray().All(step => step!["startedAt"] is not null && step["completedAt"] is not null);

    /// <summary>The median of each phase over <paramref name="creates"/>, in the order the phases happen.</summary>
    public static IReadOnlyList<(string Phase, TimeSpan Median)> Medians(IEnumerable<CreateTiming> creates) =>
        [.. creates.SelectMany(Of)
            .GroupBy(phase => phase.Phase, StringComparer.Ordinal)
            .Select(group => (group.Key, Statistics.Median(group.Select(phase => phase.Duration))))];

    private static DateTimeOffset At(JsonNode? node) =>
        node?.GetValue<DateTimeOffset>() ?? throw new BenchmarkFailedException("The create operation is missing a timestamp.");
}
