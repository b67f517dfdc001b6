namespace ControlPlane.Errors;

/// <summary>How a domain rule's refusal reads over HTTP. One place (<see cref="ProblemMapping"/>) turns it into a status code.</summary>
public enum ProblemKind
{
    Validation,
    NotFound,
    Conflict,
    Forbidden,
    Unprocessable,
    /// <summary>429: the caller must wait; the problem's <c>retryAfterSeconds</c> says how long.</summary>
    TooManyRequests,
}

/// <summary>
/// A domain rule said no. <see cref="Type"/> is a stable slug clients can branch on; the message is a
/// sentence for a person. It crosses grain boundaries, so it carries its data in serialized fields.
/// </summary>
[GenerateSerializer]
public sealed class ControlPlaneException : Exception
{
    public ControlPlaneException(ProblemKind kind, string type, string title, string detail, IReadOnlyDictionary<string, string>? extensions = null)
        : base(detail)
    {
        Kind = kind;
        Type = type;
        Title = title;
        Detail = detail;
        Extensions = extensions ?? new Dictionary<string, string>();
    }

    [Id(0)] public ProblemKind Kind { get; private set; }
    [Id(1)] public string Type { get; private set; }
    [Id(2)] public string Title { get; private set; }
    [Id(3)] public string Detail { get; private set; }
    [Id(4)] public IReadOnlyDictionary<string, string> Extensions { get; private set; }
}

/// <summary>The refusals the control plane can give, each with its stable type and a title a person understands.</summary>
public static class Problems
{
    public static ControlPlaneException NotFound(string what, string id) =>
        new(ProblemKind.NotFound, "not-found", $"{Capitalize(what)} not found", $"No {what} '{id}' exists, or you cannot see it.");

    public static ControlPlaneException OperationInProgress(string instanceId, string operationId, string operationType) =>
        new(
            ProblemKind.Conflict,
            "operation-in-progress",
            "Another operation is in progress",
            $"Instance '{instanceId}' is running operation '{operationId}' ({operationType}). Wait for it to finish or cancel it, then retry.",
            new Dictionary<string, string> { ["operationId"] = operationId });

    public static ControlPlaneException InvalidState(string instanceId, string state, string action, string hint) =>
        new(
            ProblemKind.Conflict,
            "invalid-instance-state",
            "The instance is not in a state that allows this",
            $"Cannot {action} instance '{instanceId}' while it is {state}. {hint}",
            new Dictionary<string, string> { ["state"] = state });

    public static ControlPlaneException NoChange(string instanceId, string detail) =>
        new(ProblemKind.Conflict, "no-change", "Nothing to change", $"Instance '{instanceId}' {detail}");

    public static ControlPlaneException NameTaken(string name) =>
        new(
            ProblemKind.Conflict,
            "name-taken",
            "Name already in use",
            $"This tenant already has an instance named '{name}'. Choose another name or delete that instance first.");

    public static ControlPlaneException QuotaExceeded(string plan, int limit) =>
        new(
            ProblemKind.Forbidden,
            "quota-exceeded",
            "Instance quota reached",
            $"The '{plan}' plan allows {limit} instance(s) and all are in use. Delete an instance or move the tenant to a larger plan.",
            new Dictionary<string, string> { ["plan"] = plan, ["limit"] = limit.ToString(System.Globalization.CultureInfo.InvariantCulture) });

    public static ControlPlaneException QuotaExceededByPlan(string plan, int limit, int instances) =>
        new(
            ProblemKind.Forbidden,
            "quota-exceeded",
            "Instance quota reached",
            $"The '{plan}' plan allows {limit} instance(s) and the tenant has {instances}. Delete instances first, or choose a larger plan.",
            new Dictionary<string, string> { ["plan"] = plan, ["limit"] = limit.ToString(System.Globalization.CultureInfo.InvariantCulture) });

    public static ControlPlaneException NotCancellable(string operationId, string reason) =>
        new(
            ProblemKind.Conflict,
            "operation-not-cancellable",
            "The operation cannot be cancelled",
            $"Operation '{operationId}' cannot be cancelled: {reason}",
            new Dictionary<string, string> { ["operationId"] = operationId });

    public static ControlPlaneException IdempotencyKeyReused(string key) =>
        new(
            ProblemKind.Unprocessable,
            "idempotency-key-reused",
            "Idempotency key reused with a different request",
            $"Idempotency-Key '{key}' was already used for a different request. Use a new key for a new request.");

    public static ControlPlaneException TooManyIdempotencyKeys(int limit, TimeSpan retryAfter)
    {
        var seconds = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return new(
            ProblemKind.TooManyRequests,
            "too-many-idempotency-keys",
            "Too many idempotency keys",
            $"This tenant sent {limit} requests with distinct Idempotency-Keys in the last 24 hours, as many as are remembered. " +
            $"Retry after {seconds} s, when the oldest is forgotten, or send requests without a key.",
            new Dictionary<string, string> { ["retryAfterSeconds"] = seconds });
    }

    private static string Capitalize(string what) => string.Concat(char.ToUpperInvariant(what[0]).ToString(), what[1..]);
}
