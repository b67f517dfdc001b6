using Billing.Sla;
using Billing.Tests.Support;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Billing.Tests.Sla;

/// <summary>Without anyone driving it, each running instance is probed every <c>Billing:Sla:ProbeInterval</c> and its minute recorded.</summary>
public sealed class ProbeTimerTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Now = new(2026, 11, 3, 10, 0, 30, TimeSpan.Zero);

    private readonly TestDirectory _directory = new();
    private readonly BillingHost _host;

    public ProbeTimerTests() =>
        _host = new BillingHost(_directory, new FakeTimeProvider(Now), new RecordingLedger(), new Dictionary<string, string>
        {
            ["Billing:Sla:ProbeInterval"] = "00:00:01",
            ["Billing:Sla:ProbeTimeout"] = "00:00:01",
        });

    public Task InitializeAsync() => Task.CompletedTask;

    // IAsyncLifetime, not IAsyncDisposable: xUnit 2 disposes test classes only through these two.
    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        _directory.Dispose();
    }

    [Fact]
    public async Task A_running_instance_is_probed_on_its_own_and_its_minute_records_every_probe()
    {
        var api = _host.CreateAdminApi();
        var tenantId = (string)(await api.CreateTenantAsync("Acme Corp", "team"))["id"]!;
        var instanceId = (string)(await api.CreateRunningInstanceAsync(tenantId, "orders-cache"))["id"]!;
        var minutes = _host.Services.GetRequiredService<ProbeMinutes>();

        // The billing clock stands still, so every probe the timer makes lands in this one minute.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        ProbeMinute? minute;
        while ((minute = await minutes.ReadAsync(instanceId, ProbeMinute.MinuteOf(Now))) is not { Probes: >= 3 })
        {
            Assert.True(DateTime.UtcNow < deadline, $"The probe timer ran {minute?.Probes ?? 0} time(s) in a minute.");
            await Task.Delay(200);
        }

        Assert.Equal(0, minute.Failed);
        Assert.Equal(minute.Probes, minute.LatenciesMs.Count);
        Assert.False(minute.IsBad);
    }
}
