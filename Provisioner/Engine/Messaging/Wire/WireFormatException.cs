namespace Provisioner.Messaging.Wire;

/// <summary>A message that can never be processed as sent: the same bytes fail the same way on every delivery.</summary>
public sealed class WireFormatException(string message, Exception? inner = null) : Exception(message, inner);
