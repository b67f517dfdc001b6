using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using ControlPlane.Tests.Support;

namespace ControlPlane.Tests.Auditing;

/// <summary>The audit log's read API as customers and platform admins use it: filters, paging, isolation, exports, verification.</summary>
public sealed class AuditApiTests(AuditedHost host) : IClassFixture<AuditedHost>
{
    private static readonly string[] s_plans = ["team", "enterprise", "developer", "team"];

    [Fact]
    public async Task A_tenant_reads_only_its_own_records_and_another_tenants_log_is_not_found()
    {
        var (ours, theirs) = await TwoTenantsWithHistoryAsync();
        var (member, _) = await host.KeyAsync("reader", "admin", ours);

        var own = await member.ListAllAsync($"/api/v1/tenants/{ours}/audit");
        using var other = await member.SendAsync(HttpMethod.Get, $"/api/v1/tenants/{theirs}/audit");
        using var otherExport = await member.SendAsync(HttpMethod.Get, $"/api/v1/tenants/{theirs}/audit:export?format=jsonl");
        using var platform = await member.SendAsync(HttpMethod.Get, "/api/v1/audit");

        Assert.True(own.Count >= s_plans.Length);
        Assert.All(own, record => Assert.Equal(ours, (string?)record["tenantId"]));
        await ControlPlaneApi.ExpectProblemAsync(other, HttpStatusCode.NotFound, "not-found");
        await ControlPlaneApi.ExpectProblemAsync(otherExport, HttpStatusCode.NotFound, "not-found");
        await ControlPlaneApi.ExpectProblemAsync(platform, HttpStatusCode.Forbidden, "forbidden");
        var platformWide = await host.Admin.ListAllAsync($"/api/v1/audit?tenantId={theirs}");
        Assert.NotEmpty(platformWide);
        Assert.All(platformWide, record => Assert.Equal(theirs, (string?)record["tenantId"]));
    }

    [Fact]
    public async Task Filters_select_by_action_actor_target_outcome_and_time()
    {
        var started = DateTimeOffset.UtcNow.AddSeconds(-1);
        var (tenantId, _) = await TwoTenantsWithHistoryAsync();
        var (member, actor) = await host.KeyAsync("planner", "admin", tenantId);
        using (await member.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}:changePlan", new { plan = "enterprise" }))
        {
        }

        var path = $"/api/v1/tenants/{tenantId}/audit";
        var changes = await host.Admin.ListAllAsync($"{path}?action=tenant.plan.change");
        Assert.Equal(s_plans.Length + 1, changes.Count);
        Assert.All(changes, record => Assert.Equal(("tenant.plan.change", "succeeded", tenantId), ((string?)record["action"], (string?)record["outcome"], (string?)record["target"])));

        var byActor = await host.Admin.ListAllAsync($"{path}?actor={Uri.EscapeDataString(actor)}");
        var byKey = await host.Admin.ListAllAsync($"{path}?actor={Uri.EscapeDataString(actor[..actor.IndexOf(' ', StringComparison.Ordinal)])}");
        Assert.Equal(((string?)Assert.Single(byActor)["actor"], byActor[0]["id"]!.ToJsonString()), (actor, Assert.Single(byKey)["id"]!.ToJsonString()));

        Assert.Equal(changes.Count, (await host.Admin.ListAllAsync($"{path}?target={tenantId}&outcome=succeeded&action=tenant.plan.change")).Count);
        Assert.Empty(await host.Admin.ListAllAsync($"{path}?outcome=rejected"));
        Assert.Equal(changes.Count, (await host.Admin.ListAllAsync($"{path}?action=tenant.plan.change&since={Uri.EscapeDataString(started.ToString("O"))}")).Count);
        Assert.Empty(await host.Admin.ListAllAsync($"{path}?until={Uri.EscapeDataString(started.ToString("O"))}"));
    }

    [Fact]
    public async Task Pages_follow_each_other_newest_first_without_gaps_or_repeats()
    {
        var (tenantId, _) = await TwoTenantsWithHistoryAsync();
        var path = $"/api/v1/tenants/{tenantId}/audit";
        var all = await host.Admin.ListAllAsync($"{path}?pageSize=100");

        var paged = await host.Admin.ListAllAsync($"{path}?pageSize=2");
        var first = await host.Admin.GetAsync($"{path}?pageSize=2");

        Assert.Equal(2, first["items"]!.AsArray().Count);
        Assert.NotNull((string?)first["nextPageToken"]);
        var ids = paged.Select(record => (long)record["id"]!).ToList();
        Assert.Equal(all.Select(record => (long)record["id"]!), ids);
        Assert.Equal(ids.OrderDescending(), ids);
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }

    [Fact]
    public async Task Bad_filters_and_formats_answer_problems_naming_the_field()
    {
        var (tenantId, _) = await TwoTenantsWithHistoryAsync();

        foreach (var (query, field) in new[]
        {
            ("audit?since=yesterday", "since"),
            ("audit?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
            ("audit?pageSize=0", "pageSize"),
            ("audit?pageToken=garbage", "pageToken"),
            ($"audit?action={new string('a', 300)}", "action"),
            ("audit:export?format=xml", "format"),
            ("audit:export", "format"),
        })
        {
            using var response = await host.Admin.SendAsync(HttpMethod.Get, $"/api/v1/tenants/{tenantId}/{query}");
            var problem = await ControlPlaneApi.ExpectProblemAsync(response, HttpStatusCode.BadRequest, "validation-failed");
            Assert.NotNull(problem["errors"]?[field]);
        }
    }

    [Fact]
    public async Task Exports_in_json_lines_and_csv_parse_back_to_the_records_and_are_themselves_recorded()
    {
        var (tenantId, _) = await TwoTenantsWithHistoryAsync();
        var listed = await host.Admin.ListAllAsync($"/api/v1/tenants/{tenantId}/audit?action=tenant.plan.change");
        var exportsBefore = (await host.RecordsAsync("audit.export")).Count;

        using var jsonl = await host.Admin.SendAsync(HttpMethod.Get, $"/api/v1/tenants/{tenantId}/audit:export?format=jsonl&action=tenant.plan.change");
        using var csv = await host.Admin.SendAsync(HttpMethod.Get, $"/api/v1/tenants/{tenantId}/audit:export?format=csv&action=tenant.plan.change");

        Assert.Equal(HttpStatusCode.OK, jsonl.StatusCode);
        Assert.Equal("application/x-ndjson", jsonl.Content.Headers.ContentType?.MediaType);
        Assert.Equal("attachment", jsonl.Content.Headers.ContentDisposition?.DispositionType);
        Assert.EndsWith(".jsonl", jsonl.Content.Headers.ContentDisposition?.FileName?.Trim('"'), StringComparison.Ordinal);
        var lines = (await jsonl.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonNode.Parse(line)!).ToList();
        Assert.Equal(listed.Select(record => record.ToJsonString()).Reverse(), lines.Select(record => record.ToJsonString()));

        Assert.Equal("text/csv", csv.Content.Headers.ContentType?.MediaType);
        Assert.EndsWith(".csv", csv.Content.Headers.ContentDisposition?.FileName?.Trim('"'), StringComparison.Ordinal);
        var rows = ParseCsv(await csv.Content.ReadAsStringAsync());
        var header = rows[0];
        Assert.Equal(["id", "occurredAt", "completedAt", "actor", "tenantId", "action", "target", "outcome", "details", "before", "after"], header.Take(11));
        Assert.Equal(listed.Count, rows.Count - 1);
        foreach (var (row, record) in rows.Skip(1).Zip(listed.AsEnumerable().Reverse()))
        {
            Assert.Equal(((string?)record["id"]!.ToJsonString(), (string?)record["actor"], (string?)record["details"]), (row[0], row[3], row[8]));
            Assert.Equal(record["before"]!.ToJsonString(), JsonNode.Parse(row[9])!.ToJsonString());
        }

        var exports = await host.RecordsAsync("audit.export");
        Assert.Equal(exportsBefore + 2, exports.Count);
        Assert.All(exports.Take(2), record => Assert.Equal(("succeeded", host.AdminActor, tenantId), (record.Outcome, record.Actor, record.TenantId)));
        Assert.StartsWith($"{listed.Count} record(s) as csv", exports[0].Details, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_reports_an_intact_chain_to_platform_admins_only()
    {
        var (tenantId, _) = await TwoTenantsWithHistoryAsync();
        var (member, _) = await host.KeyAsync("verifier", "member", tenantId);

        var verification = await host.Admin.GetAsync("/api/v1/audit:verify");
        using var refused = await member.SendAsync(HttpMethod.Get, "/api/v1/audit:verify");

        Assert.True((bool)verification["intact"]!, verification.ToJsonString());
        Assert.True((long)verification["records"]! > 0);
        Assert.Null(verification["brokenLink"]);
        await ControlPlaneApi.ExpectProblemAsync(refused, HttpStatusCode.Forbidden, "forbidden");
    }

    /// <summary>Two tenants, each moved through the plans; answers their ids.</summary>
    private async Task<(string Ours, string Theirs)> TwoTenantsWithHistoryAsync()
    {
        var ours = (string)(await host.Admin.CreateTenantAsync("Ours Corp", plan: "developer"))["id"]!;
        var theirs = (string)(await host.Admin.CreateTenantAsync("Theirs Corp", plan: "developer"))["id"]!;
        foreach (var tenantId in new[] { ours, theirs })
        {
            foreach (var plan in s_plans)
            {
                using var response = await host.Admin.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenantId}:changePlan", new { plan });
                await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.OK);
            }
        }

        return (ours, theirs);
    }

    /// <summary>RFC 4180: quoted fields may hold commas, quotes (doubled) and line breaks; rows end in CRLF.</summary>
    private static List<List<string>> ParseCsv(string text)
    {
        var rows = new List<List<string>>();
        var row = new List<string>();
        var field = new StringBuilder();
        var quoted = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
                else
                {
                    field.Append(c);
                }
            }
            else if (c == '"')
            {
                quoted = true;
            }
            else if (c == ',')
            {
                row.Add(field.ToString());
                field.Clear();
            }
            else if (c == '\r' && i + 1 < text.Length && text[i + 1] == '\n')
            {
                row.Add(field.ToString());
                field.Clear();
                rows.Add(row);
                row = [];
                i++;
            }
            else
            {
                field.Append(c);
            }
        }

        return rows;
    }
}
