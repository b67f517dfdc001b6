using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Billing.Usage;
using ControlPlane.Persistence;
using Billing.Stripe.Tests.Support;
using ControlPlane.Security;
using Microsoft.Extensions.DependencyInjection;

namespace Billing.Stripe.Tests.Api;

/// <summary>The finance endpoint in the real control-plane host (no Stripe key configured, so Stripe is not consulted).</summary>
public sealed class FinanceApiTests(FinanceApiTests.Host host) : IClassFixture<FinanceApiTests.Host>
{
    [Fact]
    public async Task Finance_reads_the_month_as_JSON_and_as_CSV()
    {
        var finance = await host.ClientAsync(Roles.Finance);

        using var json = await finance.GetAsync("/api/v1/finance/reconciliation?period=2026-11");
        Assert.Equal(HttpStatusCode.OK, json.StatusCode);
        var report = await json.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("2026-11", report.GetProperty("period").GetString());
        Assert.False(report.GetProperty("stripeSynced").GetBoolean());
        var line = report.GetProperty("lines").EnumerateArray().Single(l => l.GetProperty("tenantId").GetString() == "tnt-api");
        Assert.Equal(42, line.GetProperty("ledger").GetInt64());
        Assert.Equal("pipeline_lag", line.GetProperty("discrepancies")[0].GetProperty("class").GetString());

        using var csv = await finance.GetAsync("/api/v1/finance/reconciliation?period=2026-11&format=csv");
        Assert.Equal("text/csv", csv.Content.Headers.ContentType?.MediaType);
        Assert.Contains("usage,2026-11,tnt-api,,operations,42,42,", await csv.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var negotiated = new HttpRequestMessage(HttpMethod.Get, "/api/v1/finance/reconciliation?period=2026-11");
        negotiated.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/csv"));
        using var byAccept = await finance.SendAsync(negotiated);
        Assert.Equal("text/csv", byAccept.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task A_platform_admin_may_read_it_too()
    {
        using var response = await (await host.ClientAsync(Roles.PlatformAdmin)).GetAsync("/api/v1/finance/reconciliation?period=2026-11");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Theory]
    [InlineData("", "period")]
    [InlineData("?period=2026-13", "period")]
    [InlineData("?period=november", "period")]
    [InlineData("?period=2999-01", "period")]
    [InlineData("?period=2026-11&format=xml", "format")]
    public async Task Bad_input_is_a_problem_naming_the_field(string query, string field)
    {
        using var response = await (await host.ClientAsync(Roles.Finance)).GetAsync("/api/v1/finance/reconciliation" + query);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("urn:controlplane:problem:validation-failed", problem.GetProperty("type").GetString());
        Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _));
    }

    [Fact]
    public async Task A_key_without_the_finance_role_is_forbidden_and_no_key_is_unauthenticated()
    {
        using var forbidden = await (await host.ClientAsync("member", tenantId: "tnt-api")).GetAsync("/api/v1/finance/reconciliation?period=2026-11");
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        Assert.Equal("application/problem+json", forbidden.Content.Headers.ContentType?.MediaType);

        using var anonymous = await host.CreateClient().GetAsync("/api/v1/finance/reconciliation?period=2026-11");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal("application/problem+json", anonymous.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Creating_a_tenant_asks_billing_for_its_Stripe_customer()
    {
        var admin = await host.ClientAsync(Roles.PlatformAdmin);
        using var created = await admin.PostAsJsonAsync("/api/v1/tenants", new { name = "Billing Onboarding", plan = "team" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var tenantId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString();

        await using var connection = await host.Services.GetRequiredService<Database>().OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT tenant_name FROM stripe_customers WHERE tenant_id = @tenant AND customer_id IS NULL";
        Database.AddParameter(command, "tenant", tenantId);
        Assert.Equal("Billing Onboarding", await command.ExecuteScalarAsync());
    }

    public sealed class Host() : ControlPlaneApiHost("finance-api")
    {
        public override async Task InitializeAsync()
        {
            await base.InitializeAsync();
            await Services.GetRequiredService<IUsageLedger>().AppendAsync(
            [
                new UsageEvent
                {
                    SourceEventId = "api-1",
                    TenantId = "tnt-api",
                    InstanceId = "ins-api",
                    Meter = "operations",
                    Quantity = 42,
                    OccurredAt = new DateTimeOffset(2026, 11, 3, 4, 5, 0, TimeSpan.Zero),
                },
            ]);
        }
    }
}
