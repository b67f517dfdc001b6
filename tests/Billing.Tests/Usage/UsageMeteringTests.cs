using System.Net;
using System.Text.Json.Nodes;
using Billing.Tests.Support;
using Billing.Usage;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Billing.Tests.Usage;

/// <summary>
/// Instance-seconds and operations of a real Garnet instance reach the ledger once per hour and meter: across a lost
/// ledger answer (the same events sent again), a restart of the control plane and a restart of the instance's process
/// (its counter starts again from zero).
/// </summary>
public sealed class UsageMeteringTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Ten = new(2026, 11, 3, 10, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Eleven = Ten.AddHours(1);

    private readonly TestDirectory _directory = new();
    private readonly FakeTimeProvider _clock = new(Ten.AddMinutes(20));
    private readonly RecordingLedger _ledger = new();
    private BillingHost _host;

    public UsageMeteringTests() => _host = NewHost();

    public Task InitializeAsync() => Task.CompletedTask;

    // IAsyncLifetime, not IAsyncDisposable: xUnit 2 disposes test classes only through these two.
    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        _directory.Dispose();
    }

    [Fact]
    public async Task Each_hour_lands_in_the_ledger_exactly_once_across_replays_and_restarts()
    {
        var api = _host.CreateAdminApi();
        var tenantId = (string)(await api.CreateTenantAsync("Acme Corp", "team"))["id"]!;
        var instanceId = (string)(await api.CreateRunningInstanceAsync(tenantId, "orders-cache"))["id"]!;
        var credentials = await api.GetCredentialsAsync(tenantId, instanceId);

        await MeasureAtAsync(instanceId, Ten.AddMinutes(25));
        await using (var customer = await ConnectAsync(credentials))
        {
            await SendAsync(customer, sets: 100, gets: 20);
            await WaitForOperationsAsync(credentials, instanceId, 120);
        }

        await MeasureAtAsync(instanceId, Ten.AddMinutes(40));

        // Hour 10 ends. The ledger stores it but its answer is lost: the grain sends the same events again.
        _ledger.FailAfterNextAppend = true;
        _clock.SetUtcNow(Eleven.AddMinutes(5));
        await Assert.ThrowsAnyAsync<Exception>(() => _host.Metering(instanceId).MeasureAsync());
        await MeasureAtAsync(instanceId, Eleven.AddMinutes(6));
        Assert.Equal(2, _ledger.Accepted.Count);
        Assert.Equal(4, _ledger.Attempts.Count);
        Assert.Equal(2_400, _ledger.Quantity(UsageMeters.InstanceSeconds("small"), Ten));   // Running from 10:20
        Assert.Equal(120, _ledger.Quantity(UsageMeters.Operations, Ten));
        Assert.All(_ledger.Attempts, attempt => Assert.Equal(_ledger.Accepted.Single(a => a.SourceEventId == attempt.SourceEventId), attempt));

        await using (var customer = await ConnectAsync(credentials))
        {
            await SendAsync(customer, sets: 50, gets: 0);
            await WaitForOperationsAsync(credentials, instanceId, 170);
        }

        await MeasureAtAsync(instanceId, Eleven.AddMinutes(10));

        // The control plane restarts; then the instance's process is killed and the reconcile loop starts it again.
        await _host.DisposeAsync();
        _host = NewHost();
        api = _host.CreateAdminApi();
        await api.WaitForInstanceAsync(tenantId, instanceId, instance => (string?)instance["health"] == "healthy");
        var before = HostedProcesses.Under(_host.InstanceDirectory(instanceId));
        HostedProcesses.KillUnder(_host.InstanceDirectory(instanceId));
        await WaitForNewProcessAsync(instanceId, before);

        await using (var customer = await ConnectWhenServingAsync(credentials))
        {
            await SendAsync(customer, sets: 30, gets: 0);
            await WaitForOperationsAsync(credentials, instanceId, 30);
        }

        await MeasureAtAsync(instanceId, Eleven.AddMinutes(40));

        // The SLA's minutes from before the restart are still there: 10:25, 10:40, 11:05, 11:06 and 11:10 probed (11:40 is
        // not over yet), 80 eligible minutes since 10:20, none bad.
        var sla = await api.GetAsync($"/api/v1/tenants/{tenantId}/instances/{instanceId}/sla");
        Assert.Equal((5, 80, 0), ((long)sla["probes"]!["measuredMinutes"]!, (long)sla["eligibleMinutes"]!, (long)sla["badMinutes"]!));

        await MeasureAtAsync(instanceId, Eleven.AddMinutes(65));
        await MeasureAtAsync(instanceId, Eleven.AddMinutes(66));

        Assert.Equal(3_600, _ledger.Quantity(UsageMeters.InstanceSeconds("small"), Eleven));
        Assert.Equal(80, _ledger.Quantity(UsageMeters.Operations, Eleven));   // 50 before the restart, 30 after
        Assert.Contains(_ledger.Accepted, usage => usage.SourceEventId == $"{instanceId}:operations:2026-11-03T11Z" && usage.TenantId == tenantId);

        // Deleted at 12:10: ten more minutes are billed, and once that hour is in the ledger nothing more ever is.
        _clock.SetUtcNow(Eleven.AddMinutes(70));
        using (var delete = await api.SendAsync(HttpMethod.Delete, $"/api/v1/tenants/{tenantId}/instances/{instanceId}"))
        {
            var operation = await ControlPlaneApi.ExpectAsync(delete, HttpStatusCode.Accepted);
            Assert.Equal("succeeded", (string?)(await api.WaitForOperationAsync(tenantId, (string)operation["id"]!))["status"]);
        }

        await MeasureAtAsync(instanceId, Eleven.AddHours(2).AddMinutes(5));
        await MeasureAtAsync(instanceId, Eleven.AddHours(5));
        Assert.Equal(600, _ledger.Quantity(UsageMeters.InstanceSeconds("small"), Eleven.AddHours(1)));
        Assert.Equal(6_600, _ledger.Total(UsageMeters.InstanceSeconds("small")));
        Assert.Equal(200, _ledger.Total(UsageMeters.Operations));
        Assert.Equal(5, _ledger.Accepted.Count);
        Assert.DoesNotContain(_host.Logs.Lines, line => line.Contains((string)credentials["password"]!, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_change_billing_hears_of_late_is_billed_from_when_it_happened_but_never_into_an_hour_already_in_the_ledger()
    {
        var tenantId = (string)(await _host.CreateAdminApi().CreateTenantAsync("Late notices", "team"))["id"]!;
        var metering = _host.Metering("ins-late-notices");

        // Running since 10:05, heard of at 10:20; stopped at 10:30, heard of at 10:55 (billing was unreachable). Counted
        // when heard, that would be 35 minutes; as it happened, it is 25.
        await metering.ObserveLifecycleAsync(Notice(tenantId, MeteredState.Running, changedAt: Ten.AddMinutes(5)));
        _clock.SetUtcNow(Ten.AddMinutes(55));
        await metering.ObserveLifecycleAsync(Notice(tenantId, MeteredState.Stopped, changedAt: Ten.AddMinutes(30)));
        await MeasureAtAsync("ins-late-notices", Eleven.AddMinutes(5));
        Assert.Equal(25 * 60, _ledger.Quantity(UsageMeters.InstanceSeconds("small"), Ten));

        // Started at 10:50 says a notice heard at 11:10: hour 10 is final, so it counts from 11:00.
        _clock.SetUtcNow(Eleven.AddMinutes(10));
        await metering.ObserveLifecycleAsync(Notice(tenantId, MeteredState.Running, changedAt: Ten.AddMinutes(50)));
        await MeasureAtAsync("ins-late-notices", Eleven.AddMinutes(65));
        Assert.Equal(25 * 60, _ledger.Quantity(UsageMeters.InstanceSeconds("small"), Ten));
        Assert.Equal(3_600, _ledger.Quantity(UsageMeters.InstanceSeconds("small"), Eleven));
    }

    private static InstanceLifecycleNotice Notice(string tenantId, MeteredState state, DateTimeOffset changedAt) =>
        new() { TenantId = tenantId, State = state, Size = "small", ChangedAt = changedAt };

    private BillingHost NewHost() => new(_directory, _clock, _ledger, new Dictionary<string, string> { ["Reconcile:Interval"] = "00:00:01" });

    private async Task MeasureAtAsync(string instanceId, DateTimeOffset at)
    {
        _clock.SetUtcNow(at);
        await _host.Metering(instanceId).MeasureAsync();
    }

    /// <summary>Waits until the instance has counted <paramref name="expected"/> commands, read as the platform's user (customers may not run INFO).</summary>
    private async Task WaitForOperationsAsync(JsonNode credentials, string instanceId, long expected)
    {
        await using var platform = await RespConnection.OpenAsync(
            (string)credentials["host"]!, (int)credentials["port"]!, await PlatformCredentials.PasswordAsync(_host.Services, instanceId), "platform");
        await platform.WaitForOperationsAsync(expected);
    }

    private static Task<RespConnection> ConnectAsync(JsonNode credentials) =>
        RespConnection.OpenAsync((string)credentials["host"]!, (int)credentials["port"]!, (string)credentials["password"]!);

    private static async Task<RespConnection> ConnectWhenServingAsync(JsonNode credentials)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                return await ConnectAsync(credentials);
            }
            catch (System.Net.Sockets.SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }

    private static async Task SendAsync(RespConnection customer, int sets, int gets)
    {
        for (var i = 0; i < sets; i++)
        {
            Assert.Equal("OK", await customer.SendAsync("SET", $"key:{i}", "value"));
        }

        for (var i = 0; i < gets; i++)
        {
            Assert.Equal("value", await customer.SendAsync("GET", $"key:{i}"));
        }
    }

    private async Task WaitForNewProcessAsync(string instanceId, IReadOnlyList<int> before)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (HostedProcesses.Under(_host.InstanceDirectory(instanceId)) is not { Count: > 0 } now || now.Intersect(before).Any())
        {
            Assert.True(DateTime.UtcNow < deadline, "The reconcile loop did not restart the killed instance.");
            await Task.Delay(100);
        }
    }
}
