using System.CommandLine;
using System.Text.Json.Nodes;

namespace ControlPlane.Cli.Commands;

/// <summary>
/// People and API keys, of a tenant (<c>members</c>, <c>keys</c>) and of the platform (<c>platform members</c>,
/// <c>platform keys</c>): the same commands over two bases.
/// </summary>
internal static class TeamCommands
{
    public static Command Members(CliEnvironment environment) =>
        MembersOf(environment, async session => $"{await session.TenantPathAsync()}/members", "The tenant's people and their roles", canChangeRole: true);

    public static Command Keys(CliEnvironment environment) =>
        KeysOf(environment, async session => $"{await session.TenantPathAsync()}/api-keys", "The tenant's API keys (the secret is shown once, at creation or rotation)");

    public static Command Platform(CliEnvironment environment) =>
        Define.Command("platform", "The platform's own people and keys (platform roles: platform-admin, sre, finance)",
            MembersOf(environment, _ => Task.FromResult("/api/v1/platform/members"), "People with a platform role", canChangeRole: false),
            KeysOf(environment, _ => Task.FromResult("/api/v1/platform/api-keys"), "Platform API keys (the secret is shown once)"));

    /// <summary>Prints the one-time sign-in link an invitation answers: the only time it is shown.</summary>
    public static void SayLink(Session session, JsonNode? added)
    {
        session.Output.Say($"{added?.Text("member.email")} is {added?.Text("member.role")}. Their one-time sign-in link (until {added?.Time("signInLink.expiresAt")}), shown only now:");
        session.Output.Say(added?.Text("signInLink.url") ?? "(none)");
    }

    private static Command MembersOf(CliEnvironment environment, Func<Session, Task<string>> basePath, string description, bool canChangeRole)
    {
        var email = Define.Id("email", "The person's email address");
        var user = Define.Id("user", "The person's user id or email");
        var role = Define.Required("--role", "Their role (see: controlplane whoami, and GET /api/v1/roles)");
        var pageToken = Define.Optional("--page-token", "The next page, as the last list said");
        var commands = new List<Command>
        {
            Define.Command("list", description, environment, [pageToken], async session =>
                session.Output.List(await session.Api.GetAsync(TenantCommands.Paged(await basePath(session), session.Value(pageToken)), session.CancellationToken), MemberColumns)),
            Define.Command("add", "Add a person at a role no greater than yours; prints their one-time sign-in link", environment, [email, role], async session =>
            {
                var added = await session.Api.SendAsync(HttpMethod.Post, await basePath(session), new { email = session.Value(email), role = session.Value(role) }, null, session.CancellationToken);
                if (session.Output.Format == OutputFormat.Json)
                {
                    session.Output.Json(added);
                    return;
                }

                SayLink(session, added);
            }),
            Define.Command("remove", "Remove a person (a tenant always keeps an owner)", environment, [user], async session =>
            {
                var path = await MemberPathAsync(session, await basePath(session), session.Value(user));
                await session.Api.SendAsync(HttpMethod.Delete, path, null, null, session.CancellationToken);
                session.Output.Say($"Removed {session.Value(user)}.");
            }),
        };
        if (canChangeRole)
        {
            commands.Add(Define.Command("set-role", "Change a person's role", environment, [user, role], async session =>
                session.Output.Item(
                    await session.Api.SendAsync(HttpMethod.Patch, await MemberPathAsync(session, await basePath(session), session.Value(user)), new { role = session.Value(role) }, null, session.CancellationToken),
                    MemberColumns)));
        }

        return Define.Command("members", description, [.. commands]);
    }

    private static Command KeysOf(CliEnvironment environment, Func<Session, Task<string>> basePath, string description)
    {
        var name = Define.Id("name", "What the key is for, e.g. ci-deploy");
        var key = Define.Id("key-id", "The key's id");
        var role = Define.Required("--role", "The key's role, no greater than yours");
        var expiresIn = new Option<TimeSpan?>("--expires-in") { Description = "Expire after this long, e.g. 30.00:00:00 for 30 days (default: never)" };
        var overlap = new Option<int>("--overlap-minutes") { Description = "How long the old secret keeps working after a rotation (0–1440)", DefaultValueFactory = _ => 60 };
        var includeInactive = Define.Flag("--include-inactive", "Also revoked and expired keys");
        var pageToken = Define.Optional("--page-token", "The next page, as the last list said");
        return Define.Command("keys", description,
            Define.Command("list", "Keys, newest first; never their secrets", environment, [includeInactive, pageToken], async session =>
            {
                var path = await basePath(session) + (session.Value(includeInactive) ? "?includeInactive=true" : "");
                session.Output.List(await session.Api.GetAsync(TenantCommands.Paged(path, session.Value(pageToken)), session.CancellationToken), KeyColumns);
            }),
            Define.Command("create", "Create a key; its secret is printed once and cannot be shown again", environment, [name, role, expiresIn], async session =>
            {
                var expiresAt = session.Value(expiresIn) is { } lifetime ? DateTimeOffset.UtcNow + lifetime : (DateTimeOffset?)null;
                ShowSecret(session, await session.Api.SendAsync(
                    HttpMethod.Post, await basePath(session), new { name = session.Value(name), role = session.Value(role), expiresAt }, null, session.CancellationToken));
            }),
            Define.Command("rotate", "A new secret for the key; the old one works for --overlap-minutes more", environment, [key, overlap], async session =>
                ShowSecret(session, await session.Api.SendAsync(
                    HttpMethod.Post, $"{await basePath(session)}/{Uri.EscapeDataString(session.Value(key))}:rotate", new { oldKeyValidForMinutes = session.Value(overlap) }, null, session.CancellationToken))),
            Define.Command("revoke", "Revoke a key now, on every silo", environment, [key], async session =>
            {
                await session.Api.SendAsync(HttpMethod.Delete, $"{await basePath(session)}/{Uri.EscapeDataString(session.Value(key))}", null, null, session.CancellationToken);
                session.Output.Say($"Revoked {session.Value(key)}.");
            }));
    }

    private static void ShowSecret(Session session, JsonNode? created)
    {
        if (session.Output.Format == OutputFormat.Json)
        {
            session.Output.Json(created);
            return;
        }

        session.Output.Item(created, [("Key", n => n.Text("key.id")), ("Name", n => n.Text("key.name")), ("Role", n => n.Text("key.role")), ("Expires", n => n.Time("key.expiresAt") ?? "never")]);
        session.Output.Say("Secret (shown only now; store it in your secret manager):");
        session.Output.Say(created?.Text("secret") ?? "(none)");
    }

    /// <summary>A member by user id, or by email looked up in the list.</summary>
    private static async Task<string> MemberPathAsync(Session session, string basePath, string user)
    {
        if (user.Contains('@', StringComparison.Ordinal))
        {
            var found = await session.FindAsync(basePath, member => string.Equals(member.Text("email"), user, StringComparison.OrdinalIgnoreCase))
                ?? throw new CliException($"Nobody with the email {user} is here. See: controlplane members list");
            return $"{basePath}/{Uri.EscapeDataString(found.Text("userId")!)}";
        }

        return $"{basePath}/{Uri.EscapeDataString(user)}";
    }

    private static readonly (string, Func<JsonNode, string?>)[] MemberColumns =
        [("User", n => n.Text("userId")), ("Email", n => n.Text("email")), ("Name", n => n.Text("displayName")), ("Role", n => n.Text("role")), ("Since", n => n.Time("since"))];

    private static readonly (string, Func<JsonNode, string?>)[] KeyColumns =
        [("Id", n => n.Text("id")), ("Name", n => n.Text("name")), ("Role", n => n.Text("role")), ("Status", n => n.Text("status")),
         ("Created", n => n.Time("createdAt")), ("By", n => n.Text("createdBy")), ("Expires", n => n.Time("expiresAt")), ("Last used", n => n.Time("lastUsedAt"))];
}
