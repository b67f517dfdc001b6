using System.CommandLine;

namespace ControlPlane.Cli.Commands;

/// <summary>The audit log (the tenant's, or with <c>--platform</c> every tenant's), its export and verification; the compliance evidence bundle.</summary>
internal static class AuditCommands
{
    public static Command Audit(CliEnvironment environment)
    {
        var platform = Define.Flag("--platform", "Every tenant's records (platform roles), not the tenant's");
        var action = Define.Optional("--action", "Only this action, e.g. instance.create");
        var actor = Define.Optional("--actor", "Only this actor, e.g. key:… or user:…");
        var target = Define.Optional("--target", "Only this target, e.g. an instance id");
        var outcome = Define.Optional("--outcome", "Only this outcome: succeeded, failed, refused, …");
        var since = Define.Optional("--since", "From this time (ISO 8601)");
        var until = Define.Optional("--until", "Before this time (ISO 8601)");
        var pageToken = Define.Optional("--page-token", "The next page, as the last list said");
        var format = new Option<string>("--format") { Description = "jsonl or csv", DefaultValueFactory = _ => "jsonl" };
        format.AcceptOnlyFromAmong("jsonl", "csv");
        var file = new Option<FileInfo>("--file") { Description = "Write the export here (default: standard output)" };
        Option[] filters = [platform, action, actor, target, outcome, since, until];

        async Task<string> PathAsync(Session session, string what)
        {
            var query = string.Join('&', new[] { ("action", action), ("actor", actor), ("target", target), ("outcome", outcome), ("since", since), ("until", until) }
                .Where(filter => session.Value(filter.Item2) is not null)
                .Select(filter => $"{filter.Item1}={Uri.EscapeDataString(session.Value(filter.Item2)!)}"));
            var basePath = session.Value(platform) ? $"/api/v1/audit{what}" : $"{await session.TenantPathAsync()}/audit{what}";
            return query.Length == 0 ? basePath : $"{basePath}?{query}";
        }

        return Define.Command("audit", "Who did what, when, from where: the tamper-evident audit log",
            Define.Command("list", "Records, newest first", environment, [.. filters, pageToken], async session =>
                session.Output.List(await session.Api.GetAsync(TenantCommands.Paged(await PathAsync(session, ""), session.Value(pageToken)), session.CancellationToken), [
                    ("At", n => n.Time("occurredAt")), ("Actor", n => n.Text("actor")), ("Action", n => n.Text("action")), ("Target", n => n.Text("target")),
                    ("Outcome", n => n.Text("outcome")), ("Tenant", n => n.Text("tenantId")), ("Client", n => n.Text("clientAddress")),
                ])),
            Define.Command("export", "Every matching record, oldest first, as JSON lines or CSV (the export is itself recorded)", environment, [.. filters, format, file], async session =>
            {
                var path = await PathAsync(session, ":export");
                path += (path.Contains('?', StringComparison.Ordinal) ? "&" : "?") + $"format={session.Value(format)}";
                await DownloadAsync(session, path, session.Value(file));
            }),
            Define.Command("verify", "Check the whole hash chain; names the first broken link", environment, [], async session =>
            {
                var result = await session.Api.GetAsync("/api/v1/audit:verify", session.CancellationToken);
                session.Output.Item(result, [
                    ("Intact", n => n.Text("intact")), ("Records checked", n => n.Text("records")), ("Heads checked", n => n.Text("headsChecked")),
                    ("First broken record", n => n.Text("brokenLink.id")), ("Problem", n => n.Text("brokenLink.problem")), ("Detail", n => n.Text("brokenLink.detail")),
                ]);
                if (result?.Text("intact") == "false")
                {
                    throw new OperationFailedException("The audit chain is broken: see above.");
                }
            }));
    }

    public static Command Evidence(CliEnvironment environment)
    {
        var from = Define.Optional("--from", "Start of the period (ISO 8601; default: 30 days before --to)");
        var to = Define.Optional("--to", "End of the period (ISO 8601; default: now)");
        var file = new Option<FileInfo>("--file") { Description = "Write the bundle here (default: standard output)" };
        return Define.Command("evidence", "Compliance evidence (platform admins)",
            Define.Command("export", "The evidence bundle for a period: chain verification, roles, keys, SSO, configuration, operations", environment, [from, to, file], async session =>
            {
                var query = string.Join('&', new[] { ("from", session.Value(from)), ("to", session.Value(to)) }.Where(p => p.Item2 is not null).Select(p => $"{p.Item1}={Uri.EscapeDataString(p.Item2!)}"));
                await DownloadAsync(session, "/api/v1/compliance/evidence" + (query.Length == 0 ? "" : "?" + query), session.Value(file));
            }));
    }

    /// <summary>An export to a file created new (0600: it may hold people's addresses) or to standard output.</summary>
    private static async Task DownloadAsync(Session session, string path, FileInfo? file)
    {
        if (file is null)
        {
            await using var stdout = new MemoryStream();
            await session.Api.DownloadAsync(path, stdout, session.CancellationToken);
            await session.Environment.Stdout.WriteAsync(System.Text.Encoding.UTF8.GetString(stdout.ToArray()));
            return;
        }

        if (file.Exists)
        {
            throw new CliException($"{file.FullName} exists; choose another --file, or remove it first.");
        }

        await using (var stream = new FileStream(file.FullName, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        {
            var bytes = await session.Api.DownloadAsync(path, stream, session.CancellationToken);
            session.Output.Progress($"Wrote {bytes:N0} bytes to {file.FullName}.");
        }
    }
}
