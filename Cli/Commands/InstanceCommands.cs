using System.CommandLine;
using System.Text.Json.Nodes;

namespace ControlPlane.Cli.Commands;

/// <summary>
/// Instances: list, show, create, scale, upgrade, stop, start, restart, delete, credentials, events, operations. An
/// instance is named by its id or its name. Verbs wait for their operation to end unless <c>--no-wait</c>.
/// </summary>
internal static class InstanceCommands
{
    public static Command Build(CliEnvironment environment)
    {
        var instance = Define.Id("instance", "The instance's id or name");
        var name = Define.Id("name", "A name for the new instance (lowercase letters, digits, hyphens)");
        var product = new Option<string>("--product") { Description = "What to host (see: controlplane catalog)", DefaultValueFactory = _ => "garnet" };
        var version = Define.Optional("--version", "The product version (default: the catalog's)");
        var size = Define.Optional("--size", "The size (default: the catalog's)");
        var newSize = Define.Required("--size", "The size to move to");
        var newVersion = Define.Required("--version", "The version to move to");
        var noWait = Define.Flag("--no-wait", "Answer with the operation at once instead of waiting for it to end");
        var timeout = OperationCommands.Timeout();
        var idempotency = Define.IdempotencyKey();
        var includeDeleted = Define.Flag("--include-deleted", "Also deleted instances");
        var pageToken = Define.Optional("--page-token", "The next page, as the last list said");
        var yes = Define.Flag("--yes", "Delete without asking (the data is removed)");
        var reason = Define.Optional("--reason", "Why you read a customer's credentials (required of SREs; kept in the audit log)");

        var verbs = new[] { ("stop", "Stop the instance (its data is kept; it is not billed while stopped)"), ("start", "Start a stopped instance"), ("restart", "A new process, same endpoint and data") }
            .Select(verb => Define.Command(verb.Item1, verb.Item2, environment, [instance, noWait, timeout], async session =>
                await RunAsync(session, HttpMethod.Post, $"{await PathAsync(session, session.Value(instance))}:{verb.Item1}", null, null, session.Value(noWait), session.Value(timeout))));

        return Define.Command("instances", "The tenant's hosted instances",
        [
            Define.Command("list", "The tenant's instances", environment, [includeDeleted, pageToken], async session =>
            {
                var path = $"{await session.TenantPathAsync()}/instances" + (session.Value(includeDeleted) ? "?includeDeleted=true" : "");
                session.Output.List(await session.Api.GetAsync(TenantCommands.Paged(path, session.Value(pageToken)), session.CancellationToken), Columns);
            }),
            Define.Command("show", "An instance: state, health, endpoint", environment, [instance], async session =>
                Show(session, await session.Api.GetAsync(await PathAsync(session, session.Value(instance)), session.CancellationToken))),
            Define.Command("create", "Create an instance and wait until it is Running", environment, [name, product, version, size, noWait, timeout, idempotency], async session =>
                await RunAsync(
                    session, HttpMethod.Post, $"{await session.TenantPathAsync()}/instances",
                    new { name = session.Value(name), product = session.Value(product), version = session.Value(version), size = session.Value(size) },
                    session.KeyOrNew(idempotency), session.Value(noWait), session.Value(timeout))),
            Define.Command("scale", "Change the instance's size (its data is kept)", environment, [instance, newSize, noWait, timeout, idempotency], async session =>
                await RunAsync(session, HttpMethod.Patch, await PathAsync(session, session.Value(instance)), new { size = session.Value(newSize) }, session.KeyOrNew(idempotency), session.Value(noWait), session.Value(timeout))),
            Define.Command("upgrade", "Move the instance to another version (its data is kept)", environment, [instance, newVersion, noWait, timeout, idempotency], async session =>
                await RunAsync(session, HttpMethod.Patch, await PathAsync(session, session.Value(instance)), new { version = session.Value(newVersion) }, session.KeyOrNew(idempotency), session.Value(noWait), session.Value(timeout))),
            .. verbs,
            Define.Command("delete", "Delete the instance and its data", environment, [instance, yes, noWait, timeout], async session =>
            {
                var path = await PathAsync(session, session.Value(instance));
                if (!session.Value(yes))
                {
                    throw new CliException($"Deleting removes the instance's data for good. Run again with --yes to delete {session.Value(instance)}.");
                }

                await RunAsync(session, HttpMethod.Delete, path, null, null, session.Value(noWait), session.Value(timeout));
            }),
            Define.Command("credentials", "Connection details and password (the read is audited)", environment, [instance, reason], async session =>
            {
                var headers = session.Value(reason) is { } why ? new Dictionary<string, string> { ["X-Access-Reason"] = why } : null;
                session.Output.Item(await session.Api.GetAsync($"{await PathAsync(session, session.Value(instance))}/credentials", session.CancellationToken, headers), [
                    ("Host", n => n.Text("host")), ("Port", n => n.Text("port")), ("Username", n => n.Text("username")),
                    ("Password", n => n.Text("password")), ("URI", n => n.Text("uri")),
                ]);
            }),
            Define.Command("events", "What happened to the instance: repairs, health changes, outcomes", environment, [instance, pageToken], async session =>
                session.Output.List(
                    await session.Api.GetAsync(TenantCommands.Paged($"{await PathAsync(session, session.Value(instance))}/events", session.Value(pageToken)), session.CancellationToken),
                    [("At", n => n.Time("at")), ("Kind", n => n.Text("kind")), ("Message", n => n.Text("message"))])),
            Define.Command("operations", "The instance's operations, newest first", environment, [instance, pageToken], async session =>
                session.Output.List(
                    await session.Api.GetAsync(TenantCommands.Paged($"{await PathAsync(session, session.Value(instance))}/operations", session.Value(pageToken)), session.CancellationToken),
                    [("Id", n => n.Text("id")), ("Type", n => n.Text("type")), ("Status", n => n.Text("status")), ("By", n => n.Text("requestedBy")),
                     ("Created", n => n.Time("createdAt")), ("Error", n => n.Text("error.message"))])),
        ]);
    }

    private static readonly (string, Func<JsonNode, string?>)[] Columns =
        [("Id", n => n.Text("id")), ("Name", n => n.Text("name")), ("State", n => n.Text("state")), ("Health", n => n.Text("health")),
         ("Version", n => n.Text("version")), ("Size", n => n.Text("size")), ("Endpoint", n => n.Endpoint())];

    /// <summary>Starts an operation and, unless asked not to, waits for it and shows the instance as it ended.</summary>
    private static async Task RunAsync(Session session, HttpMethod method, string path, object? body, string? idempotencyKey, bool noWait, TimeSpan timeout)
    {
        var operation = await session.Api.SendAsync(method, path, body, idempotencyKey, session.CancellationToken)
            ?? throw new OperationFailedException("The API answered no operation.");
        if (noWait)
        {
            OperationCommands.Show(session, operation);
            return;
        }

        session.Output.Progress($"{operation.Text("type")} {operation.Text("instanceId")}: operation {operation.Text("id")}");
        await OperationCommands.WaitAsync(session, operation.Text("id")!, timeout);
        Show(session, await session.Api.GetAsync($"{await session.TenantPathAsync()}/instances/{Uri.EscapeDataString(operation.Text("instanceId")!)}", session.CancellationToken));
    }

    /// <summary>The instance's path; a name is looked up among the tenant's instances (names are unique in a tenant).</summary>
    private static async Task<string> PathAsync(Session session, string idOrName)
    {
        var instances = $"{await session.TenantPathAsync()}/instances";
        if (await session.FindAsync(instances, item => item.Text("id") == idOrName || item.Text("name") == idOrName) is { } found)
        {
            return $"{instances}/{Uri.EscapeDataString(found.Text("id")!)}";
        }

        // Not in the list (or not visible to this key): let the API say so in its own words.
        return $"{instances}/{Uri.EscapeDataString(idOrName)}";
    }

    private static void Show(Session session, JsonNode? instance) =>
        session.Output.Item(instance, [
            ("Instance", n => n.Text("id")), ("Name", n => n.Text("name")), ("State", n => n.Text("state")),
            ("Health", n => n.Text("health") + (n.Text("healthDetail") is { } detail ? $" ({detail})" : "")),
            ("Product", n => $"{n.Text("product")} {n.Text("version")}"), ("Size", n => n.Text("size")), ("Endpoint", n => n.Endpoint()),
            ("Failure", n => n.Text("failureReason")), ("Created", n => n.Time("createdAt")),
        ]);
}
