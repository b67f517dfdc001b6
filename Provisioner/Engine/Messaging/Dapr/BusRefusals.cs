using System.Diagnostics.Metrics;
using Provisioner.Messaging.Wire;

namespace Provisioner.Messaging.Dapr;

/// <summary>
/// Counts the messages either app refused off the bus in the <c>provisioning.bus.refused</c> metric, by direction and
/// reason (unreadable, authenticator, clock), so forgeries and replays show on a dashboard and not only in the log line
/// each subscriber writes beside it.
/// </summary>
public sealed class BusRefusals(IMeterFactory meters)
{
    public const string MeterName = "Provisioner.Messaging";
    public const string CounterName = "provisioning.bus.refused";

    private readonly Counter<long> _refused = meters.Create(MeterName).CreateCounter<long>(CounterName, description: "Provisioning messages refused off the bus, by direction and reason");

    public void Record(WireDirection direction, WireFormatException refusal) =>
        _refused.Add(
            1,
            new KeyValuePair<string, object?>("direction", direction.ToString().ToLowerInvariant()),
            new KeyValuePair<string, object?>("reason", refusal.Reason.ToString().ToLowerInvariant()));
}
