using System.CommandLine;
using System.Text.Json.Nodes;

namespace ControlPlane.Cli.Commands;

/// <summary>An operation that ended without succeeding, in the API's words.</summary>
public sealed class OperationFailedException(string message) : Exception(message);

/// <summary>Operations: show one, wait for one, cancel one.</summary>
internal static class OperationCommands
{
    private static readonly TimeSpan PollEvery = TimeSpan.FromSeconds(1);

    public static Option<TimeSpan> Timeout() =>
        new("--timeout") { Description = "How long to wait for the operation (e.g. 00:15:00)", DefaultValueFactory = _ => TimeSpan.FromMinutes(15) };

    public static Command Build(CliEnvironment environment)
    {
        var id = Define.Id("operation-id", "The operation's id (from the answer that started it)");
        var timeout = Timeout();
        return Define.Command("operations", "An operation: how far it got, waiting for its end, cancelling it",
            Define.Command("show", "An operation with its steps", environment, [id], async session =>
                Show(session, await session.Api.GetAsync($"{await session.TenantPathAsync()}/operations/{Uri.EscapeDataString(session.Value(id))}", session.CancellationToken))),
            Define.Command("wait", "Wait until the operation ends; fails (exit 1) unless it succeeded", environment, [id, timeout], async session =>
                Show(session, await WaitAsync(session, session.Value(id), session.Value(timeout)))),
            Define.Command("cancel", "Ask to cancel an operation (only before it passes a point of no return)", environment, [id], async session =>
                Show(session, await session.Api.SendAsync(HttpMethod.Post, $"{await session.TenantPathAsync()}/operations/{Uri.EscapeDataString(session.Value(id))}:cancel", null, null, session.CancellationToken))));
    }

    /// <summary>
    /// Polls the operation until it ends, printing each step as it starts and ends (to standard error), and answers it;
    /// an operation that failed or was cancelled is an <see cref="OperationFailedException"/> with the API's reason.
    /// </summary>
    public static async Task<JsonNode> WaitAsync(Session session, string operationId, TimeSpan timeout)
    {
        var path = $"{await session.TenantPathAsync()}/operations/{Uri.EscapeDataString(operationId)}";
        var deadline = DateTimeOffset.UtcNow + timeout;
        var said = new HashSet<string>(StringComparer.Ordinal);
        while (true)
        {
            var operation = await session.Api.GetAsync(path, session.CancellationToken) ?? throw new OperationFailedException($"Operation {operationId} answered nothing.");
            foreach (var step in (operation["steps"] as JsonArray ?? []).OfType<JsonNode>())
            {
                var line = $"  {step.Text("name")}: {step.Text("status")}";
                if (said.Add(line))
                {
                    session.Output.Progress(line);
                }
            }

            switch (operation.Text("status"))
            {
                case "succeeded":
                    return operation;
                case "failed" or "cancelled":
                    throw new OperationFailedException(
                        $"{operation.Text("type")} {operation.Text("status")}: {operation.Text("error.message") ?? "no reason given"}" +
                        (operation.Text("error.code") is { } code ? $" ({code})" : "") + $". See: controlplane operations show {operationId}");
            }

            if (DateTimeOffset.UtcNow >= deadline)
            {
                throw new OperationFailedException(
                    $"{operation.Text("type")} is still {operation.Text("status")} after {timeout}. It goes on; follow it with: controlplane operations wait {operationId}");
            }

            await Task.Delay(PollEvery, session.CancellationToken);
        }
    }

    public static void Show(Session session, JsonNode? operation) =>
        session.Output.Item(operation, [
            ("Operation", n => n.Text("id")),
            ("Type", n => n.Text("type")),
            ("Status", n => n.Text("status")),
            ("Instance", n => n.Text("instanceId")),
            ("Requested by", n => n.Text("requestedBy")),
            ("Created", n => n.Time("createdAt")),
            ("Completed", n => n.Time("completedAt")),
            ("Steps", n => string.Join("; ", (n["steps"] as JsonArray ?? []).OfType<JsonNode>().Select(step => $"{step.Text("name")} {step.Text("status")}")) is { Length: > 0 } steps ? steps : null),
            ("Error", n => n.Text("error.message")),
        ]);
}
