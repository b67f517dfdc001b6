using System.Net;
using System.Net.Http;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Provisioner.CloudApis;
using Provisioner.Deployments;

namespace Provisioner.Kubernetes;

/// <summary>
/// The backend's only way to the API server: server-side apply, read and delete, with the API's refusals
/// turned into the engine's errors: what a retry can fix is transient, what a person must fix says what to do.
/// </summary>
public sealed class KubernetesCluster : IDisposable
{
    private readonly KubernetesBackendOptions _options;
    private readonly ILogger<KubernetesCluster> _logger;

    public KubernetesCluster(IOptions<KubernetesBackendOptions> options, ILogger<KubernetesCluster> logger)
    {
        _options = options.Value;
        _logger = logger;
        var configuration = !string.IsNullOrEmpty(_options.ApiServer)
            ? new KubernetesClientConfiguration { Host = _options.ApiServer }
            : !string.IsNullOrEmpty(_options.KubeConfigPath)
                ? KubernetesClientConfiguration.BuildConfigFromConfigFile(_options.KubeConfigPath)
                : KubernetesClientConfiguration.InClusterConfig();
        Client = new k8s.Kubernetes(configuration, new RetryAfterHandler("Kubernetes API", _options.Http, logger));
    }

    public IKubernetes Client { get; }

    /// <summary>Server-side apply of a whole object under the backend's field manager, taking fields over from anyone else.</summary>
    public async Task ApplyAsync<T>(T manifest, Func<V1Patch, string, bool, CancellationToken, Task<T>> patch, CancellationToken cancellationToken)
        where T : IKubernetesObject<V1ObjectMeta>
    {
        var what = Describe(manifest.Kind, manifest.Metadata.NamespaceProperty, manifest.Metadata.Name);
        try
        {
            await patch(new V1Patch(manifest, V1Patch.PatchType.ApplyPatch), _options.FieldManager, true, cancellationToken);
            _logger.LogDebug("Applied {Object}", what);
        }
        catch (HttpOperationException exception)
        {
            throw Translate(exception, "apply", what);
        }
        catch (HttpRequestException exception)
        {
            throw Unreachable(exception);
        }
    }

    /// <summary>The object, or null when it does not exist.</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1822", Justification = "Called on the cluster like its other operations.")]
    public async Task<T?> ReadAsync<T>(string kind, string? @namespace, string name, Func<CancellationToken, Task<T>> read, CancellationToken cancellationToken)
        where T : class
    {
        try
        {
            return await read(cancellationToken);
        }
        catch (HttpOperationException exception) when (exception.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        catch (HttpOperationException exception)
        {
            throw Translate(exception, "read", Describe(kind, @namespace, name));
        }
        catch (HttpRequestException exception)
        {
            throw Unreachable(exception);
        }
    }

    /// <summary>Deletes the object; one that is already gone counts as deleted.</summary>
    public async Task DeleteAsync(string kind, string? @namespace, string name, Func<CancellationToken, Task> delete, CancellationToken cancellationToken)
    {
        try
        {
            await delete(cancellationToken);
            _logger.LogInformation("Deleted {Object}", Describe(kind, @namespace, name));
        }
        catch (HttpOperationException exception) when (exception.Response.StatusCode == HttpStatusCode.NotFound)
        {
        }
        catch (HttpOperationException exception)
        {
            throw Translate(exception, "delete", Describe(kind, @namespace, name));
        }
        catch (HttpRequestException exception)
        {
            throw Unreachable(exception);
        }
    }

    public void Dispose() => Client.Dispose();

    private static string Describe(string? kind, string? @namespace, string? name) =>
        @namespace is null ? $"{kind} {name}" : $"{kind} {@namespace}/{name}";

    private static Exception Translate(HttpOperationException exception, string verb, string what)
    {
        var reason = exception.Response.Content is { Length: > 0 } body ? StatusMessage(body) : exception.Message;
        return exception.Response.StatusCode switch
        {
            HttpStatusCode.Forbidden when reason.Contains("being terminated", StringComparison.Ordinal) =>
                new TransientDeploymentException($"Cannot {verb} {what} yet: {reason}", exception),
            HttpStatusCode.Forbidden when reason.Contains("exceeded quota", StringComparison.Ordinal) => new DeploymentFailedException(
                "quota-exceeded",
                $"The tenant's namespace has no room for {what}: {reason} Raise Provisioner:Kubernetes:Quota, or delete or shrink an instance of the tenant.",
                exception),
            HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized => new DeploymentFailedException(
                "kubernetes-forbidden",
                $"The cluster refused to {verb} {what}: {reason} Grant the provisioner's service account this (the Helm chart's " +
                "kubernetesBackend.rbac does), or check Provisioner:Kubernetes:ApiServer and its credentials.",
                exception),
            HttpStatusCode.UnprocessableEntity or HttpStatusCode.BadRequest => new DeploymentFailedException(
                "kubernetes-invalid",
                $"The cluster rejected {what}: {reason} Check the catalog's container template and sizes for this product.",
                exception),
            // A conflict (a resourceVersion moved on, a namespace still being created) or a missing parent is fixed by trying again.
            _ => new TransientDeploymentException($"Could not {verb} {what}: {(int)exception.Response.StatusCode} {reason}", exception),
        };
    }

    private static TransientDeploymentException Unreachable(HttpRequestException exception) =>
        new($"The Kubernetes API server cannot be reached: {exception.Message}", exception);

    /// <summary>The message of a Kubernetes Status body; never the request's own content, which may hold a password.</summary>
    private static string StatusMessage(string body)
    {
        try
        {
            var status = KubernetesJson.Deserialize<V1Status>(body);
            return status?.Message ?? "";
        }
        catch (System.Text.Json.JsonException)
        {
            return body.Length > 200 ? body[..200] : body;
        }
    }
}
