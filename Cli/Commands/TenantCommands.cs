using System.CommandLine;
using System.Text.Json.Nodes;

namespace ControlPlane.Cli.Commands;

/// <summary>Tenants: list, show, create (with its first owner), change plan.</summary>
internal static class TenantCommands
{
    public static Command Build(CliEnvironment environment)
    {
        var name = Define.Required("--name", "The tenant's name, as its people know it");
        var plan = Define.Required("--plan", "developer, team or enterprise (see the README's plans)");
        var owner = Define.Optional("--owner", "Email of the tenant's first owner: they get a one-time sign-in link, printed here");
        var idempotency = Define.IdempotencyKey();
        var newPlan = Define.Id("plan", "The plan to move to");
        var pageToken = Define.Optional("--page-token", "The next page, as the last list said");
        return Define.Command("tenants", "Tenants (creating one is for platform admins)",
            Define.Command("list", "The tenants this key sees: every one for platform roles, its own for a tenant's key", environment, [pageToken], async session =>
                session.Output.List(await session.Api.GetAsync(Paged("/api/v1/tenants", session.Value(pageToken)), session.CancellationToken), Columns)),
            Define.Command("show", "The tenant (--tenant, or the key's own): plan, quota, instances", environment, [], async session =>
                Show(session, await session.Api.GetAsync(await session.TenantPathAsync(), session.CancellationToken))),
            Define.Command("create", "Create a tenant, and with --owner its first owner and their sign-in link", environment, [name, plan, owner, idempotency], async session =>
            {
                var key = session.KeyOrNew(idempotency);
                var tenant = await session.Api.SendAsync(HttpMethod.Post, "/api/v1/tenants", new { name = session.Value(name), plan = session.Value(plan) }, key, session.CancellationToken);
                if (session.Value(owner) is not { } email)
                {
                    Show(session, tenant);
                    return;
                }

                var tenantId = tenant?.Text("id") ?? throw new OperationFailedException("The API answered no tenant.");
                var added = await session.Api.SendAsync(
                    HttpMethod.Post, $"/api/v1/tenants/{Uri.EscapeDataString(tenantId)}/members", new { email, role = "owner" }, key + ":owner", session.CancellationToken);
                if (session.Output.Format == OutputFormat.Json)
                {
                    session.Output.Json(new JsonObject { ["tenant"] = tenant!.DeepClone(), ["owner"] = added?.DeepClone() });
                    return;
                }

                Show(session, tenant);
                TeamCommands.SayLink(session, added);
            }),
            Define.Command("change-plan", "Move the tenant to another plan from now on", environment, [newPlan, idempotency], async session =>
                session.Output.Item(
                    await session.Api.SendAsync(HttpMethod.Post, $"{await session.TenantPathAsync()}:changePlan", new { plan = session.Value(newPlan) }, session.KeyOrNew(idempotency), session.CancellationToken),
                    [("Plan", n => n.Text("plan")), ("Previous plan", n => n.Text("previousPlan")), ("Since", n => n.Time("planSince")), ("Changed", n => n.Text("changed"))])));
    }

    public static string Paged(string path, string? pageToken) =>
        pageToken is null ? path : $"{path}{(path.Contains('?', StringComparison.Ordinal) ? '&' : '?')}pageToken={Uri.EscapeDataString(pageToken)}";

    private static readonly (string, Func<JsonNode, string?>)[] Columns =
        [("Id", n => n.Text("id")), ("Name", n => n.Text("name")), ("Plan", n => n.Text("plan")), ("Status", n => n.Text("status")),
         ("Instances", n => $"{n.Text("instanceCount")}/{n.Text("maxInstances")}"), ("Created", n => n.Time("createdAt"))];

    private static void Show(Session session, JsonNode? tenant) =>
        session.Output.Item(tenant, [
            ("Tenant", n => n.Text("id")), ("Name", n => n.Text("name")), ("Plan", n => n.Text("plan")), ("Status", n => n.Text("status")),
            ("Instances", n => $"{n.Text("instanceCount")} of {n.Text("maxInstances")}"), ("Created", n => n.Time("createdAt")),
        ]);
}
