namespace Provisioner.Messaging.Wire;

/// <summary>A message that can never be processed as sent: the same bytes fail the same way on every delivery.</summary>
public sealed class WireFormatException(string message, Exception? inner = null, WireRefusal reason = WireRefusal.Unreadable) : Exception(message, inner)
{
    public WireRefusal Reason { get; } = reason;
}

/// <summary>Why a message was refused, as counted by <see cref="Dapr.BusRefusals"/>.</summary>
public enum WireRefusal
{
    /// <summary>Not a message of this format, or not a valid one.</summary>
    Unreadable,

    /// <summary>Its authenticator is missing, was made with a key this side does not hold, or does not match its content.</summary>
    Authenticator,

    /// <summary>Stamped further ahead of this side's clock than the allowed skew.</summary>
    Clock,
}
