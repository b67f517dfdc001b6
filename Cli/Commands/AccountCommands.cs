using System.Text.Json.Nodes;

namespace ControlPlane.Cli.Commands;

/// <summary>Signing the CLI in and out, who the key is, and what can be created.</summary>
internal static class AccountCommands
{
    public static System.CommandLine.Command Login(CliEnvironment environment)
    {
        var fromStdin = Define.Flag("--api-key-stdin", "Read the API key from standard input (e.g. from a password manager)");
        return Define.Command("login", "Check a key against the control plane and save it with the address (and --tenant) for later commands", environment, [fromStdin], async session =>
        {
            var key = session.Value(fromStdin)
                ? (await session.Environment.Stdin.ReadToEndAsync(session.CancellationToken)).Trim()
                : session.Value(GlobalOptions.ApiKeyFile) is { } file
                    ? Session.ReadKeyFile(file.FullName)
                    : throw new CliException("Give the key with --api-key-file <file> or --api-key-stdin; keys are never taken as arguments, which show in ps.");
            if (key.Length == 0)
            {
                throw new CliException("The key read was empty.");
            }

            using var api = new ApiClient(new Uri(session.Url), key);
            var me = await api.GetAsync("/api/v1/me", session.CancellationToken);
            new Profile(session.Url, key, session.Value(GlobalOptions.Tenant) ?? session.Profile.Tenant).Save(session.ProfilePath);
            session.Output.Say($"Signed in to {session.Url} as {Describe(me!)}. Saved to {session.ProfilePath} (readable by you only).");
        });
    }

    public static System.CommandLine.Command Logout(CliEnvironment environment) =>
        Define.Command("logout", "Forget the saved address and key", environment, [], session =>
        {
            if (File.Exists(session.ProfilePath))
            {
                File.Delete(session.ProfilePath);
            }

            session.Output.Say($"Removed {session.ProfilePath}.");
            return Task.CompletedTask;
        });

    public static System.CommandLine.Command WhoAmI(CliEnvironment environment) =>
        Define.Command("whoami", "Who the key is, its platform role and its tenants", environment, [], async session =>
        {
            var me = await session.Api.GetAsync("/api/v1/me", session.CancellationToken);
            session.Output.Item(me, [
                ("Who", Describe),
                ("Platform role", node => node.Text("platformRole")),
                ("Tenants", node => string.Join(", ", (node["memberships"] as JsonArray ?? []).OfType<JsonNode>().Select(m => $"{m.Text("tenantId")} ({m.Text("role")})")) is { Length: > 0 } list ? list : "none"),
            ]);
        });

    public static System.CommandLine.Command Catalog(CliEnvironment environment) =>
        Define.Command("catalog", "Products, versions and sizes that can be created", environment, [], async session =>
        {
            var catalog = await session.Api.GetAsync("/api/v1/catalog", session.CancellationToken);
            var rows = new JsonArray();
            foreach (var product in (catalog?["products"] as JsonArray ?? []).OfType<JsonNode>())
            {
                foreach (var size in (product["sizes"] as JsonArray ?? []).OfType<JsonNode>())
                {
                    rows.Add(new JsonObject
                    {
                        ["product"] = product.Text("name"),
                        ["size"] = size.Text("name") + (size.Text("name") == product.Text("defaultSize") ? " (default)" : ""),
                        ["memoryMb"] = size.Text("memoryMb"),
                        ["description"] = size.Text("description"),
                        ["versions"] = string.Join(", ", (product["versions"] as JsonArray ?? []).OfType<JsonNode>().Select(v => v.Text("name") + (v.Text("name") == product.Text("defaultVersion") ? "*" : ""))),
                    });
                }
            }

            if (session.Output.Format == OutputFormat.Json)
            {
                session.Output.Json(catalog);
                return;
            }

            session.Output.List(new JsonObject { ["items"] = rows }, [
                ("Product", n => n.Text("product")), ("Size", n => n.Text("size")), ("Memory MB", n => n.Text("memoryMb")),
                ("Versions (* default)", n => n.Text("versions")), ("Description", n => n.Text("description")),
            ]);
        });

    private static string Describe(JsonNode me) => $"{me.Text("name")} ({me.Text("kind")} {me.Text("id")})";
}
