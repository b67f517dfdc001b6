using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Billing.Ledger;
using ControlPlane.Auditing;
using ControlPlane.Persistence;
using ControlPlane.Security;
using Billing.Stripe.Tests.Support;
using FakeStripe;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace Billing.Stripe.Tests.Api;

/// <summary>An operator syncs one tenant's Stripe figures through the real control-plane host, talking to the fake Stripe.</summary>
public sealed class StripeSyncApiTests(StripeSyncApiTests.Host host) : IClassFixture<StripeSyncApiTests.Host>
{
    [Fact]
    public async Task A_platform_admin_syncs_one_tenant_and_the_sync_is_audited()
    {
        var admin = await host.ClientAsync(Roles.PlatformAdmin);
        using var created = await admin.PostAsJsonAsync("/api/v1/tenants", new { name = "Stripe Sync", plan = "team" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var tenantId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        var customerId = await host.Services.GetRequiredService<StripeCustomers>().EnsureAsync(tenantId);
        await host.Services.GetRequiredService<StripeMeters>().EnsureAsync("operations");
        // Usage Stripe acknowledged an hour ago (the hour before this one, in this month or the last: both are synced).
        var hour = UsageHours.Floor(DateTimeOffset.UtcNow.AddHours(-1).ToUnixTimeSeconds());
        await using (var connection = await host.Services.GetRequiredService<Database>().OpenAsync())
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = """
                INSERT INTO meter_outbox (identifier, tenant_id, meter, hour_start, version, value, status, attempts, next_attempt_at, first_attempt_at, created_at, completed_at)
                VALUES (@identifier, @tenant, 'operations', @hour, 1, 12, 'acknowledged', 1, @hour, @hour, @hour, @hour)
                """;
            Database.AddParameter(command, "identifier", $"{tenantId}:operations:{hour}:1");
            Database.AddParameter(command, "tenant", tenantId);
            Database.AddParameter(command, "hour", hour);
            await command.ExecuteNonQueryAsync();
        }

        var requests = host.Stripe.Stats.Count(endpoint => endpoint.EndsWith("/event_summaries", StringComparison.Ordinal));
        using var response = await admin.PostAsync($"/api/v1/finance/tenants/{tenantId}/stripe:sync", null);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var result = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(1, result.GetProperty("summaries").GetInt32());
        Assert.Equal(requests + 1, host.Stripe.Stats.Count(endpoint => endpoint.EndsWith("/event_summaries", StringComparison.Ordinal)));
        await using (var connection = await host.Services.GetRequiredService<Database>().OpenAsync())
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT customer_id FROM stripe_summary_snapshots WHERE tenant_id = @tenant";
            Database.AddParameter(command, "tenant", tenantId);
            Assert.Equal(customerId, await command.ExecuteScalarAsync());
        }

        var audit = await host.Services.GetRequiredService<AuditLog>().ReadAsync(tenantId, 10);
        var entry = Assert.Single(audit, record => record.Action == "finance.stripe.sync");
        Assert.Equal("succeeded", entry.Outcome);
        Assert.Contains("1 summaries", entry.Details, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_tenant_without_a_Stripe_customer_is_not_found_and_the_refusal_is_audited()
    {
        using var response = await (await host.ClientAsync(Roles.PlatformAdmin)).PostAsync("/api/v1/finance/tenants/tnt-nobody/stripe:sync", null);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var audit = await host.Services.GetRequiredService<AuditLog>().ReadAsync("tnt-nobody", 10);
        Assert.Equal("rejected:not-found", Assert.Single(audit, record => record.Action == "finance.stripe.sync").Outcome);
    }

    [Theory]
    [InlineData("tnt%3Abad")]
    [InlineData("tnt-0123456789012345678901234567890123456789")]
    public async Task A_malformed_tenant_id_is_a_problem_naming_the_field(string tenantId)
    {
        using var response = await (await host.ClientAsync(Roles.PlatformAdmin)).PostAsync($"/api/v1/finance/tenants/{tenantId}/stripe:sync", null);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("urn:controlplane:problem:validation-failed", problem.GetProperty("type").GetString());
        Assert.True(problem.GetProperty("errors").TryGetProperty("tenantId", out _));
    }

    [Fact]
    public async Task Finance_may_read_the_reconciliation_but_not_spend_Stripe_requests_on_a_sync()
    {
        using var response = await (await host.ClientAsync(Roles.Finance)).PostAsync("/api/v1/finance/tenants/tnt-any/stripe:sync", null);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    public sealed class Host() : ControlPlaneApiHost("stripe-sync-api")
    {
        public FakeStripeServer Stripe { get; private set; } = null!;

        public override async Task InitializeAsync()
        {
            Stripe = await FakeStripeServer.StartAsync(TimeProvider.System);
            await base.InitializeAsync();
        }

        protected override async Task StopAsync()
        {
            await base.StopAsync();
            await Stripe.DisposeAsync();
        }

        protected override void Configure(IWebHostBuilder builder)
        {
            builder.UseSetting("Stripe:ApiKey", Stripe.ApiKey);
            builder.UseSetting("Stripe:ApiBase", Stripe.BaseUrl);
            builder.UseSetting("Stripe:MeterEventsBase", Stripe.BaseUrl);
            builder.UseSetting("Stripe:BackgroundDispatch", "false");
        }
    }
}
