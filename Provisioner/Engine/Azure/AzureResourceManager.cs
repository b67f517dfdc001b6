using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.ResourceManager;
using Azure.ResourceManager.Resources;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Provisioner.CloudApis;
using Provisioner.Deployments;

namespace Provisioner.Azure;

/// <summary>
/// The backend's only way to Azure Resource Manager: resource groups through ArmClient, Container Apps through the generic
/// resource API (no AppContainers SDK is available), and the app's start/stop actions through the same pipeline. Every
/// request goes through <see cref="RetryAfterHandler"/> (throttling, server errors) instead of Azure.Core's own retries,
/// and long-running operations are polled to completion. ARM's refusals become the engine's errors.
/// </summary>
public sealed class AzureResourceManager
{
    private static readonly ResourceType ContainerApps = new("Microsoft.App/containerApps");

    private readonly AzureBackendOptions _options;
    private readonly ILogger<AzureResourceManager> _logger;
    private readonly ArmClient _client;
    private readonly HttpPipeline _pipeline;

    public AzureResourceManager(IOptions<AzureBackendOptions> options, TokenCredential credential, ILogger<AzureResourceManager> logger)
    {
        _options = options.Value;
        _logger = logger;
        var clientOptions = new ArmClientOptions
        {
            Environment = new ArmEnvironment(new Uri(_options.ResourceManagerEndpoint), _options.Audience),
            Transport = new HttpClientTransport(new HttpClient(new RetryAfterHandler("Azure Resource Manager", _options.Http, logger) { InnerHandler = Handler(_options) })),
        };
        clientOptions.Retry.MaxRetries = 0;
        clientOptions.Diagnostics.IsLoggingContentEnabled = false;
        clientOptions.SetApiVersion(ContainerApps, _options.ContainerAppsApiVersion);
        _client = new ArmClient(credential, _options.SubscriptionId, clientOptions);
        _pipeline = HttpPipelineBuilder.Build(clientOptions, new BearerTokenAuthenticationPolicy(credential, _options.Audience.TrimEnd('/') + "/.default"));
    }

    private static SocketsHttpHandler Handler(AzureBackendOptions options)
    {
        var handler = new SocketsHttpHandler();
        if (!string.IsNullOrEmpty(options.TrustedRootCertificateFile))
        {
            var root = X509Certificate2.CreateFromPem(File.ReadAllText(options.TrustedRootCertificateFile));
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            {
                if (errors == SslPolicyErrors.None)
                {
                    return true;
                }

                if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
                {
                    return false;
                }

                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(root);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(new X509Certificate2(certificate));
            };
        }

        return handler;
    }

    public ResourceIdentifier GroupId(string group) => ResourceGroupResource.CreateResourceIdentifier(_options.SubscriptionId, group);

    public ResourceIdentifier AppId(string group, string app) => new($"{GroupId(group)}/providers/Microsoft.App/containerApps/{app}");

    /// <summary>The resource group's tags, or null when it does not exist.</summary>
    public async Task<IDictionary<string, string>?> ReadGroupAsync(string group, CancellationToken cancellationToken) =>
        await CallAsync($"read resource group {group}", async () =>
        {
            try
            {
                return (await _client.GetResourceGroupResource(GroupId(group)).GetAsync(cancellationToken)).Value.Data.Tags;
            }
            catch (RequestFailedException exception) when (exception.Status == 404)
            {
                return null;
            }
        });

    /// <param name="tags">Tags to keep beside the tenant's (e.g. deleted instances' last generations).</param>
    public Task EnsureGroupAsync(string group, string tenantId, IReadOnlyDictionary<string, string>? tags, CancellationToken cancellationToken) =>
        CallAsync($"create resource group {group}", async () =>
        {
            var data = new ResourceGroupData(new AzureLocation(_options.Location));
            foreach (var (name, value) in tags ?? new Dictionary<string, string>())
            {
                data.Tags[name] = value;
            }

            data.Tags[ContainerAppManifest.TenantTag] = tenantId;
            data.Tags[ContainerAppManifest.ManagedByTag] = ContainerAppManifest.ManagedBy;
            var subscription = _client.GetSubscriptionResource(SubscriptionResource.CreateResourceIdentifier(_options.SubscriptionId));
            await subscription.GetResourceGroups().CreateOrUpdateAsync(WaitUntil.Completed, group, data, cancellationToken);
            return true;
        });

    /// <summary>Deletes the tenant's group, and refuses one its tags do not say is the tenant's.</summary>
    public Task DeleteGroupAsync(string group, string tenantId, CancellationToken cancellationToken) =>
        CallAsync($"delete resource group {group}", async () =>
        {
            try
            {
                var resource = await _client.GetResourceGroupResource(GroupId(group)).GetAsync(cancellationToken);
                if (!ContainerAppManifest.IsTenantsGroup(resource.Value.Data.Tags, tenantId))
                {
                    throw ContainerAppManifest.ForeignGroup(group, tenantId);
                }

                await resource.Value.DeleteAsync(WaitUntil.Completed, cancellationToken: cancellationToken);
            }
            catch (RequestFailedException exception) when (exception.Status == 404)
            {
            }

            return true;
        });

    /// <summary>The Container App as ARM returns it (tags, properties), or null when it does not exist.</summary>
    public async Task<ContainerApp?> ReadAppAsync(string group, string app, CancellationToken cancellationToken) =>
        await CallAsync($"read Container App {group}/{app}", async () =>
        {
            try
            {
                var response = await _client.GetGenericResource(AppId(group, app)).GetAsync(cancellationToken);
                var data = response.Value.Data;
                return new ContainerApp(
                    new Dictionary<string, string>(data.Tags, StringComparer.Ordinal),
                    JsonNode.Parse(data.Properties.ToString())?.AsObject() ?? []);
            }
            catch (RequestFailedException exception) when (exception.Status == 404)
            {
                return null;
            }
        });

    /// <summary>PUT of the whole app, polled until ARM says the operation ended.</summary>
    public Task PutAppAsync(string group, string app, JsonObject body, CancellationToken cancellationToken) =>
        CallAsync($"create or update Container App {group}/{app}", async () =>
        {
            var data = new GenericResourceData(new AzureLocation((string)body["location"]!))
            {
                Properties = BinaryData.FromString(body["properties"]!.ToJsonString()),
            };
            foreach (var (name, value) in body["tags"]!.AsObject())
            {
                data.Tags[name] = (string)value!;
            }

            await _client.GetGenericResources().CreateOrUpdateAsync(WaitUntil.Completed, AppId(group, app), data, cancellationToken);
            _logger.LogInformation("Container App {Group}/{App} is applied", group, app);
            return true;
        });

    public Task DeleteAppAsync(string group, string app, CancellationToken cancellationToken) =>
        CallAsync($"delete Container App {group}/{app}", async () =>
        {
            try
            {
                await _client.GetGenericResource(AppId(group, app)).DeleteAsync(WaitUntil.Completed, cancellationToken);
                _logger.LogInformation("Container App {Group}/{App} is deleted", group, app);
            }
            catch (RequestFailedException exception) when (exception.Status == 404)
            {
            }

            return true;
        });

    /// <summary>The app's <c>start</c> or <c>stop</c> action, polled to completion through its Azure-AsyncOperation.</summary>
    public Task RunActionAsync(string group, string app, string action, CancellationToken cancellationToken) =>
        CallAsync($"{action} Container App {group}/{app}", async () =>
        {
            var uri = new Uri($"{_options.ResourceManagerEndpoint.TrimEnd('/')}{AppId(group, app)}/{action}?api-version={_options.ContainerAppsApiVersion}");
            using var message = _pipeline.CreateMessage();
            message.Request.Method = RequestMethod.Post;
            message.Request.Uri.Reset(uri);
            await _pipeline.SendAsync(message, cancellationToken);
            var response = message.Response;
            if (response.Status is not (200 or 202))
            {
                throw new RequestFailedException(response);
            }

            if (response.Headers.TryGetValue("Azure-AsyncOperation", out var status) || response.Headers.TryGetValue("Location", out status))
            {
                await PollAsync(new Uri(status!), cancellationToken);
            }

            _logger.LogInformation("Container App {Group}/{App}: {Action} finished", group, app, action);
            return true;
        });

    private async Task PollAsync(Uri status, CancellationToken cancellationToken)
    {
        while (true)
        {
            using var message = _pipeline.CreateMessage();
            message.Request.Method = RequestMethod.Get;
            message.Request.Uri.Reset(status);
            await _pipeline.SendAsync(message, cancellationToken);
            var response = message.Response;
            if (response.Status >= 400)
            {
                throw new RequestFailedException(response);
            }

            var body = response.Content.ToMemory().Length > 0 ? JsonNode.Parse(response.Content.ToString()) : null;
            switch ((string?)body?["status"])
            {
                case "Succeeded" or null when response.Status == 200:
                    return;
                case "Failed" or "Canceled":
                    throw new DeploymentFailedException("azure-operation-failed",
                        $"Azure reported the operation {(string?)body?["status"]}: {(string?)body?["error"]?["message"]}. Azure's activity log for the app says more.");
            }

            var wait = response.Headers.TryGetValue("Retry-After", out var seconds) && int.TryParse(seconds, out var value) ? TimeSpan.FromSeconds(value) : _options.PollInterval;
            await Task.Delay(wait < _options.PollInterval ? wait : _options.PollInterval, cancellationToken);
        }
    }

    private static async Task<T> CallAsync<T>(string what, Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (RequestFailedException exception)
        {
            throw Translate(exception, what);
        }
        catch (HttpRequestException exception)
        {
            throw new TransientDeploymentException($"Azure Resource Manager cannot be reached to {what}: {exception.Message}", exception);
        }
    }

    private static Exception Translate(RequestFailedException exception, string what)
    {
        var reason = $"{exception.ErrorCode ?? exception.Status.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
        return (HttpStatusCode)exception.Status switch
        {
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => new DeploymentFailedException(
                "azure-forbidden",
                $"Azure refused to {what} ({reason}). The provisioner's managed identity needs the custom role \"<prefix> instance provisioner\" " +
                "(tenants' resource groups, Container Apps, joining the environment) that deploy/bicep assigns it on the subscription; " +
                "check Provisioner:Azure:ManagedIdentityClientId and that role assignment.",
                exception),
            HttpStatusCode.BadRequest or HttpStatusCode.UnprocessableEntity => new DeploymentFailedException(
                "azure-invalid",
                $"Azure rejected the request to {what} ({reason}). Check the catalog's image, CPU and memory for Container Apps and the Provisioner:Azure settings.",
                exception),
            // 409 (another operation on the app is running), 404 of a parent just created, 429 and 5xx after the client's retries.
            _ => new TransientDeploymentException($"Could not {what} yet ({exception.Status} {reason}).", exception),
        };
    }
}

/// <summary>A Container App as read from ARM.</summary>
public sealed record ContainerApp(IReadOnlyDictionary<string, string> Tags, JsonObject Properties)
{
    public string? Tag(string name) => Tags.TryGetValue(name, out var value) ? value : null;

    public string? ProvisioningState => (string?)Properties["provisioningState"];

    public string? RunningStatus => (string?)Properties["runningStatus"];

    public bool LatestRevisionReady =>
        Properties["latestRevisionName"] is { } latest && (string?)latest == (string?)Properties["latestReadyRevisionName"];

    public long Restarts =>
        (Properties["template"]?["containers"]?[0]?["env"] as JsonArray ?? [])
            .Where(variable => (string?)variable?["name"] == ContainerAppManifest.RestartsVariable)
            .Select(variable => long.TryParse((string?)variable!["value"], out var restarts) ? restarts : 0)
            .FirstOrDefault();

    /// <summary>What customers connect to: the ingress's FQDN and exposed port.</summary>
    public Endpoint? Endpoint =>
        (string?)Properties["configuration"]?["ingress"]?["fqdn"] is { Length: > 0 } fqdn
            ? new Endpoint { Host = fqdn, Port = (int?)Properties["configuration"]!["ingress"]!["exposedPort"] ?? (int?)Properties["configuration"]!["ingress"]!["targetPort"] ?? 0 }
            : null;
}
