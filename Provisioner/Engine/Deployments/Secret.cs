namespace Provisioner.Deployments;

/// <summary>
/// A credential that travels with a deployment. Its <see cref="ToString"/> never reveals the value, so a
/// command or event that is logged, traced or printed by a record's generated ToString stays safe.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record Secret
{
    [Id(0)] public required string Value { get; init; }

    public static Secret Of(string value) => new() { Value = value };

    public override string ToString() => "[redacted]";
}
