using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Provisioner.Deployments;
using Provisioner.Messaging;
using Provisioner.Workers;
using Xunit.Abstractions;

namespace Provisioner.Cloud.Tests.Support;

/// <summary>
/// The provisioning engine as the Provisioner app runs it (catalog, backends, worker and its Polly pipeline) in a host
/// of its own, with a recording event sink in place of the control plane. Starting another over the same settings is
/// a provisioner that restarted; disposing checks no log line carried the password.
/// </summary>
public sealed class EngineHost : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly LogCapture _logs;

    private EngineHost(IHost host, LogCapture logs)
    {
        _host = host;
        _logs = logs;
    }

    public RecordingSink Events { get; } = new();

    public IServiceProvider Services => _host.Services;

    public ProvisioningWorker Worker => Services.GetRequiredService<ProvisioningWorker>();

    public T Backend<T>() where T : IDeploymentBackend => Services.GetServices<IDeploymentBackend>().OfType<T>().Single();

    public IReadOnlyCollection<string> LogLines => _logs.Lines;

    /// <summary>The dotnet host running these tests, which runs GarnetHost.dll as the fakes' stand-in for the Garnet image.</summary>
    public static string DotnetHost => Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..", "dotnet"));

    public static string GarnetHostDll => Path.Combine(AppContext.BaseDirectory, "products", "garnet", "GarnetHost.dll");

    /// <param name="services">Registrations ahead of the engine's (e.g. a test's Azure credential).</param>
    public static async Task<EngineHost> StartAsync(IDictionary<string, string?> settings, ITestOutputHelper output, Action<IServiceCollection>? services = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        var logs = new LogCapture(output);
        builder.Logging.AddProvider(logs);
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        var host = default(EngineHost);
        builder.Services.AddSingleton<IProvisioningEventSink>(_ => host!.Events);
        services?.Invoke(builder.Services);
        builder.Services.AddProvisioningEngine(builder.Configuration);
        host = new EngineHost(builder.Build(), logs);
        await host._host.StartAsync();
        return host;
    }

    public async Task<ProvisioningEvent> ApplyAsync(DeploymentSpec spec, ApplyPurpose purpose = ApplyPurpose.Operation)
    {
        var before = Events.For(spec.InstanceId).Count;
        await Worker.HandleAsync(new ApplyDeploymentCommand
        {
            InstanceId = spec.InstanceId,
            OperationId = purpose == ApplyPurpose.Reconcile ? null : "op-" + Guid.NewGuid().ToString("N"),
            IssuedAt = DateTimeOffset.UtcNow,
            Spec = spec,
            Purpose = purpose,
        }, CancellationToken.None);
        return Events.For(spec.InstanceId).Skip(before).Last(e => e is DeploymentApplied or DeploymentFailed or DeploymentCancelled);
    }

    public async Task<DeploymentApplied> ApplySucceedsAsync(DeploymentSpec spec, ApplyPurpose purpose = ApplyPurpose.Operation)
    {
        var outcome = await ApplyAsync(spec, purpose);
        return outcome as DeploymentApplied
            ?? throw new Xunit.Sdk.XunitException($"Expected DeploymentApplied, got {outcome}: {(outcome as DeploymentFailed)?.ErrorMessage}");
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync(TimeSpan.FromSeconds(30));
        _host.Dispose();
    }

    /// <summary>Fails when any log line carries <paramref name="secret"/>.</summary>
    public void AssertNeverLogged(string secret)
    {
        var leaked = _logs.Lines.FirstOrDefault(line => line.Contains(secret, StringComparison.Ordinal));
        Assert.True(leaked is null, $"A secret appeared in the log: {leaked}");
    }

    private sealed class LogCapture(ITestOutputHelper output) : ILoggerProvider
    {
        private readonly ConcurrentQueue<string> _lines = new();

        public void Write(string line)
        {
            _lines.Enqueue(line);
            try
            {
                output.WriteLine(line);
            }
            catch (InvalidOperationException)
            {
                // The test already ended; the line is still kept.
            }
        }

        public IReadOnlyCollection<string> Lines => _lines;

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(LogCapture owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                owner.Write($"{logLevel} {category}: {formatter(state, exception)}{(exception is null ? "" : " " + exception)}");
            }
        }
    }
}

/// <summary>Stands where the control plane's grains receive events.</summary>
public sealed class RecordingSink : IProvisioningEventSink
{
    private readonly ConcurrentQueue<ProvisioningEvent> _events = new();

    public Task PublishAsync(ProvisioningEvent provisioningEvent, CancellationToken cancellationToken = default)
    {
        _events.Enqueue(provisioningEvent);
        return Task.CompletedTask;
    }

    public IReadOnlyList<ProvisioningEvent> For(string instanceId) => [.. _events.Where(e => e.InstanceId == instanceId)];
}
