using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapr.Client;
using FakeDapr;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Logging;
using Provisioner.Deployments;
using Provisioner.Local;
using Provisioner.Messaging;
using Provisioner.Messaging.Wire;
using Provisioner.Tests.TestSupport;
using Xunit.Abstractions;

namespace Provisioner.Tests.Dapr;

/// <summary>
/// The Provisioner Dapr app in memory (its real Program), its fake sidecar delivering commands over HTTP as daprd
/// does, and a second fake sidecar through which the test publishes commands as the control plane would, with
/// the real DaprClient. What the app publishes back stays on the broker for the test to read.
/// </summary>
public sealed class DaprProvisionerHarness : IAsyncDisposable
{
    public const string CommandsTopic = "provisioning-commands";
    public const string EventsTopic = "provisioning-events";
    public const string DeadLetterTopic = "provisioning-dead-letters";

    private readonly WebApplicationFactory<Program> _app;
    private readonly DeferredHandler _appHandler = new();
    private FakeDaprSidecar? _sidecar;
    private FakeDaprSidecar? _controlPlaneSidecar;
    private DaprClient? _controlPlane;

    private DaprProvisionerHarness(ITestOutputHelper output, byte[] key)
    {
        Root = Directory.CreateTempSubdirectory("provisioner-dapr-tests-").FullName;
        File.SetUnixFileMode(Root, ProvisionerHarness.PassableDirectory);
        Logs = new CapturingLoggerProvider(output);
        var secrets = new WireSecretProtector();
        secrets.UseKey(key);
        Wire = new ProvisioningWireFormat(secrets);
        _app = new WebApplicationFactory<Program>();
    }

    public string Root { get; }
    public string Password { get; } = "pw-" + Guid.NewGuid().ToString("N");

    /// <summary>The platform's own password in every spec: what the backend's probes sign in with.</summary>
    public string PlatformPassword { get; } = "platform-" + Guid.NewGuid().ToString("N");

    /// <summary>The sidecar's app token, which the Provisioner app requires on its Dapr routes.</summary>
    public string AppApiToken { get; } = Guid.NewGuid().ToString("N");
    public FakePubSub Broker { get; } = new("pubsub") { MaxAttempts = 5, RetryInterval = TimeSpan.FromMilliseconds(100) };
    public CapturingLoggerProvider Logs { get; }

    /// <summary>The wire format as the control plane writes it (same key as the provisioner's, unless a test says otherwise).</summary>
    public ProvisioningWireFormat Wire { get; }

    public FakeDaprSidecar Sidecar => _sidecar!;

    /// <param name="providerKey">The provisioner's key; the control plane's unless given.</param>
    public static async Task<DaprProvisionerHarness> StartAsync(ITestOutputHelper output, byte[]? providerKey = null)
    {
        var controlPlaneKey = RandomNumberGenerator.GetBytes(32);
        var harness = new DaprProvisionerHarness(output, controlPlaneKey);
        try
        {
            await harness.StartAppAsync(providerKey ?? controlPlaneKey);
            return harness;
        }
        catch
        {
            await harness.DisposeAsync();
            throw;
        }
    }

    public string InstanceDirectory(string instanceId) => Path.Combine(Root, "instances", instanceId);

    public DeploymentSpec Spec(string instanceId, DeploymentGoal goal = DeploymentGoal.Running, long generation = 1) =>
        SmallGarnet(instanceId, Password, goal, generation, PlatformPassword);

    /// <summary>A small Garnet 2.2.8 on the local backend, as the control plane would ask for it.</summary>
    public static DeploymentSpec SmallGarnet(
        string instanceId, string password, DeploymentGoal goal = DeploymentGoal.Running, long generation = 1, string? platformPassword = null) => new()
    {
        InstanceId = instanceId,
        TenantId = "tenant-1",
        Backend = "local",
        Product = "garnet",
        Version = "2.2.8",
        Size = "small",
        Goal = goal,
        Password = Secret.Of(password),
        PlatformPassword = Secret.Of(platformPassword ?? "platform-" + password),
        Generation = generation,
    };

    /// <summary>Publishes as the control plane does: the real DaprClient, the shared wire format (signed), the commands topic.</summary>
    public Task PublishAsync(ProvisioningCommand command) =>
        _controlPlane!.PublishEventAsync("pubsub", CommandsTopic, Wire.WriteCommand(command));

    /// <summary>
    /// Publishes raw JSON on the commands topic: signed with the control plane's key (a broken or incompatible sender that
    /// holds the key), or as it is (<paramref name="sign"/> false: anyone who can reach the broker).
    /// </summary>
    public Task PublishRawAsync(string json, bool sign = true)
    {
        var message = JsonNode.Parse(json);
        return _controlPlane!.PublishEventAsync(
            "pubsub",
            CommandsTopic,
            sign && message is JsonObject command ? Wire.Sign(command, WireDirection.Command) : JsonSerializer.SerializeToElement(message));
    }

    /// <summary>The JSON of every command published so far, as the broker holds it.</summary>
    public IReadOnlyList<JsonObject> PublishedCommands =>
        [.. Broker.DataOf(CommandsTopic).Select(data => JsonNode.Parse(data!.ToJsonString())!.AsObject())];

    /// <summary>Every event the provisioner published, read back with the wire format.</summary>
    public IReadOnlyList<ProvisioningEvent> Events =>
        [.. Broker.DataOf(EventsTopic).Select(data => Wire.ReadEvent(JsonSerializer.SerializeToElement(data)))];

    public async Task<TEvent> WaitForEventAsync<TEvent>(Func<TEvent, bool> match)
        where TEvent : ProvisioningEvent
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (DateTime.UtcNow < deadline)
        {
            if (Events.OfType<TEvent>().FirstOrDefault(match) is { } found)
            {
                return found;
            }

            await Task.Delay(20);
        }

        throw new TimeoutException($"No {typeof(TEvent).Name} matched. Events: {string.Join("; ", Events)}");
    }

    public async Task WaitForDeliveryAsync(Func<Delivery, bool> match)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!Broker.Deliveries.Any(match))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"No such delivery. Deliveries: {string.Join("; ", Broker.Deliveries)}");
            }

            await Task.Delay(20);
        }
    }

    public IReadOnlyList<int> ProcessesServing(string instanceId) =>
        ProvisionerHarness.ProcessesWhere(arguments => arguments.Contains(Path.Combine(InstanceDirectory(instanceId), "data")));

    public async ValueTask DisposeAsync()
    {
        _controlPlane?.Dispose();
        if (_controlPlaneSidecar is not null)
        {
            await _controlPlaneSidecar.DisposeAsync();
        }

        if (_sidecar is not null)
        {
            await _sidecar.DisposeAsync();
        }

        await _app.DisposeAsync();
        _appHandler.Dispose();
        await ProvisionerHarness.KillProcessesUnderAsync(Root);
        LocalIsolation.ReleaseAll(Path.Combine(Root, "instances"));
        Directory.Delete(Root, recursive: true);
        var leaked = Logs.Lines.Where(line => line.Contains(Password, StringComparison.Ordinal)).ToList();
        if (leaked.Count > 0)
        {
            throw new Xunit.Sdk.XunitException($"The password appeared in the log: {leaked[0]}");
        }
    }

    private async Task StartAppAsync(byte[] provisionerKey)
    {
        _sidecar = await FakeDaprSidecar.StartAsync(Broker, "provisioner", new Uri("http://provisioner"), _appHandler, appApiToken: AppApiToken);
        _controlPlaneSidecar = await FakeDaprSidecar.StartAsync(Broker, "controlplane", appAddress: null);
        _controlPlane = new DaprClientBuilder().UseGrpcEndpoint(_controlPlaneSidecar.GrpcEndpoint).Build();
        var (first, last) = TestPorts.Next(20);
        var app = _app.WithWebHostBuilder(web =>
        {
            web.UseSetting("Provisioner:DataDir", Root);
            web.UseSetting("Provisioner:Local:FirstPort", first.ToString(CultureInfo.InvariantCulture));
            web.UseSetting("Provisioner:Local:LastPort", last.ToString(CultureInfo.InvariantCulture));
            web.UseSetting("Provisioner:Local:StopInstancesOnShutdown", "true");
            web.UseSetting("Provisioning:Dapr:GrpcEndpoint", _sidecar.GrpcEndpoint);
            web.UseSetting("Provisioning:Dapr:SecretKey", Convert.ToBase64String(provisionerKey));
            web.UseSetting("Provisioning:Dapr:AppApiToken", AppApiToken);
            web.ConfigureLogging(logging => logging.AddProvider(Logs));
        });
        _appHandler.Target = app.Server.CreateHandler();
        await _sidecar.WhenSubscribedAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>Routes the sidecar's requests into the in-memory app once it exists; until then the app "is not listening".</summary>
    private sealed class DeferredHandler : HttpMessageHandler
    {
        private HttpMessageInvoker? _invoker;

        public HttpMessageHandler Target
        {
            set => _invoker = new HttpMessageInvoker(value);
        }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            _invoker is { } invoker
                ? invoker.SendAsync(request, cancellationToken)
                : throw new HttpRequestException("The app is not listening yet.");

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _invoker?.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
