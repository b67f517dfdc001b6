using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Provisioner.Catalog;
using Provisioner.Deployments;
using Provisioner.Health;
using static Provisioner.Azure.ContainerAppManifest;

namespace Provisioner.Azure;

/// <summary>
/// Runs each hosted instance as an Azure Container App: per tenant a resource group tagged with the tenant id, per instance
/// a Container App in the shared environment with the password as an app secret, TCP ingress on the product's port, the
/// size's CPU and memory, and its data in its own folder of the environment's Azure Files storage. A PUT of the whole app
/// is idempotent, so a step repeated after a crash converges; a restart changes a template variable, which makes a new
/// revision (the container starts again, the data stays).
/// </summary>
/// <remarks>
/// Container Apps rather than AKS: the environment runs Dapr, KEDA and ingress for us, and an app per instance is one
/// ARM resource to PUT, read and delete, with no cluster to patch and upgrade.
/// </remarks>
public sealed class AzureBackend(
    AzureResourceManager arm,
    ProductCatalog catalog,
    IOptions<AzureBackendOptions> options,
    TimeProvider time,
    ILogger<AzureBackend> logger) : IDeploymentBackend
{
    public const string BackendName = "azure";

    private const int KeptTombstones = 20;
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan ArmTimeout = TimeSpan.FromMinutes(10);

    public string Name => BackendName;

    private AzureBackendOptions Settings => options.Value;

    public async Task<DeploymentPlan> PlanAsync(DeploymentSpec desired, CancellationToken cancellationToken)
    {
        DeploymentTls.RefuseUnsupported(desired, Name);
        var group = ResourceGroup(Settings, desired);
        var app = AppName(desired);
        var groupTags = await arm.ReadGroupAsync(group, cancellationToken);
        if (groupTags is not null && !IsTenantsGroup(groupTags, desired.TenantId))
        {
            throw ForeignGroup(group, desired.TenantId);
        }

        var current = await arm.ReadAppAsync(group, app, cancellationToken);
        var recorded = new[] { current?.Tag(GenerationTag), groupTags is not null && groupTags.TryGetValue(DeletedTagPrefix + app, out var deleted) ? deleted : null }
            .Select(value => long.TryParse(value, CultureInfo.InvariantCulture, out var generation) ? generation : (long?)null)
            .Max();
        if (DeploymentGenerations.IsSuperseded(desired, recorded, logger))
        {
            return DeploymentPlan.UpToDate;
        }

        return desired.Goal switch
        {
            DeploymentGoal.Running => await PlanRunningAsync(desired, groupTags, current, cancellationToken),
            DeploymentGoal.Stopped => PlanStopped(desired, groupTags, current),
            DeploymentGoal.Absent => PlanAbsent(desired, current),
            _ => throw new DeploymentFailedException("invalid-goal", $"Unknown deployment goal {desired.Goal}."),
        };
    }

    public async Task<ObservedDeployment> ObserveAsync(DeploymentSpec desired, CancellationToken cancellationToken) =>
        await ObserveAsync(desired, await arm.ReadAppAsync(ResourceGroup(Settings, desired), AppName(desired), cancellationToken), cancellationToken);

    /// <summary>Removes a closed tenant's resource group, and with it whatever is left in it.</summary>
    public async Task CloseTenantAsync(DeploymentSpec anyInstanceOfTenant, CancellationToken cancellationToken)
    {
        var group = ResourceGroup(Settings, anyInstanceOfTenant);
        await arm.DeleteGroupAsync(group, anyInstanceOfTenant.TenantId, cancellationToken);
        logger.LogInformation("Removed resource group {Group} of tenant {TenantId}", group, anyInstanceOfTenant.TenantId);
    }

    private async Task<DeploymentPlan> PlanRunningAsync(
        DeploymentSpec desired, IDictionary<string, string>? groupTags, ContainerApp? current, CancellationToken cancellationToken)
    {
        var offering = Resolve(desired);
        var steps = new List<DeploymentStep>();
        if (groupTags is null)
        {
            steps.Add(GroupStep(desired));
        }

        var starts = Starts(current);
        var changes = current is null || current.Tag(ProductTag) != desired.Product || current.Tag(VersionTag) != desired.Version
            || current.Tag(SizeTag) != desired.Size || current.Restarts != desired.Restarts || current.RunningStatus == "Stopped";
        if (current is null || changes || current.Tag(GenerationTag) != desired.Generation.ToString(CultureInfo.InvariantCulture)
            || current.Tag(SecretDigestTag) != SecretDigest(desired) || current.ProvisioningState is not ("Succeeded" or null))
        {
            var name = current is null ? $"Create Container App for {Describe(offering)}"
                : changes ? $"Update Container App to {Describe(offering)}"
                : $"Apply generation {desired.Generation}";
            steps.Add(PutStep(name, desired, offering, changes ? starts + 1 : starts));
        }

        if (current?.RunningStatus == "Stopped")
        {
            steps.Add(ActionStep("start", desired));
        }

        if (steps.Count > 0)
        {
            steps.Add(WaitStep(desired, offering));
            return new DeploymentPlan(steps, Drift: null);
        }

        var observed = await ObserveAsync(desired, current, cancellationToken);
        return observed.Status == DeploymentStatus.Running
            ? new DeploymentPlan([], null, observed)
            : new DeploymentPlan([WaitStep(desired, offering)], observed.Detail);
    }

    private DeploymentPlan PlanStopped(DeploymentSpec desired, IDictionary<string, string>? groupTags, ContainerApp? current)
    {
        var offering = Resolve(desired);
        var steps = new List<DeploymentStep>();
        if (groupTags is null)
        {
            steps.Add(GroupStep(desired));
        }

        if (current is null)
        {
            steps.Add(PutStep($"Create Container App for {Describe(offering)}", desired, offering, 1));
        }

        if (current?.RunningStatus != "Stopped")
        {
            steps.Add(ActionStep("stop", desired));
        }

        return new DeploymentPlan(steps, null);
    }

    private DeploymentPlan PlanAbsent(DeploymentSpec desired, ContainerApp? current) =>
        current is null
            ? DeploymentPlan.UpToDate
            : new DeploymentPlan(
                [new DeploymentStep("Delete Container App", token => DeleteAsync(desired, token), ArmTimeout, PointOfNoReturn: true)],
                Drift: null);

    private DeploymentStep GroupStep(DeploymentSpec desired) => new(
        "Create the tenant's resource group",
        token => arm.EnsureGroupAsync(ResourceGroup(Settings, desired), desired.TenantId, null, token),
        ArmTimeout);

    private DeploymentStep PutStep(string name, DeploymentSpec desired, CatalogOffering offering, long starts) => new(
        name,
        async token =>
        {
            await WaitForIdleAsync(desired, token);
            await arm.PutAppAsync(ResourceGroup(Settings, desired), AppName(desired), Build(Settings, desired, offering, starts), token);
        },
        ArmTimeout);

    private DeploymentStep ActionStep(string action, DeploymentSpec desired) => new(
        action == "stop" ? "Stop Container App (its data is kept)" : "Start Container App",
        async token =>
        {
            await WaitForIdleAsync(desired, token);
            await arm.RunActionAsync(ResourceGroup(Settings, desired), AppName(desired), action, token);
        },
        ArmTimeout);

    /// <summary>
    /// Waits out an operation ARM still runs on the app (one a provisioner started before it died): Container Apps refuses
    /// any other with 409 until it ends, which takes longer than a step's retries would wait.
    /// </summary>
    private async Task WaitForIdleAsync(DeploymentSpec desired, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        while (await arm.ReadAppAsync(ResourceGroup(Settings, desired), AppName(desired), cancellationToken) is { ProvisioningState: "InProgress" or "Updating" or "Deleting" } busy)
        {
            if (time.GetElapsedTime(started) > ArmTimeout)
            {
                throw new TransientDeploymentException($"Container App {AppName(desired)} is still {busy.ProvisioningState} after {ArmTimeout.TotalMinutes:0} minutes.");
            }

            logger.LogInformation("Container App {App} is {State}: waiting for ARM's running operation to end", AppName(desired), busy.ProvisioningState);
            await Task.Delay(Settings.PollInterval, time, cancellationToken);
        }
    }

    private DeploymentStep WaitStep(DeploymentSpec desired, CatalogOffering offering) => new(
        "Wait for the new revision to be ready and answer an authenticated PING",
        token => WaitUntilAnsweringAsync(desired, offering, token),
        TimeSpan.FromSeconds(offering.Definition.Container!.StartupTimeoutSeconds + 30));

    private async Task WaitUntilAnsweringAsync(DeploymentSpec desired, CatalogOffering offering, CancellationToken cancellationToken)
    {
        var timeout = TimeSpan.FromSeconds(offering.Definition.Container!.StartupTimeoutSeconds);
        var started = time.GetTimestamp();
        while (true)
        {
            var observed = await ObserveAsync(desired, cancellationToken);
            if (observed.Status == DeploymentStatus.Running)
            {
                return;
            }

            if (time.GetElapsedTime(started) > timeout)
            {
                throw new DeploymentFailedException(
                    "startup-timeout",
                    $"{Describe(offering)} did not answer an authenticated PING within {timeout.TotalSeconds:0} s. {observed.Detail} " +
                    $"The app's system and console logs in Log Analytics (ContainerAppSystemLogs_CL) tell why.");
            }

            await Task.Delay(Settings.PollInterval, time, cancellationToken);
        }
    }

    private static async Task<ObservedDeployment> ObserveAsync(DeploymentSpec desired, ContainerApp? app, CancellationToken cancellationToken)
    {
        if (app is null)
        {
            return ObservedDeployment.Absent;
        }

        var observed = new ObservedDeployment
        {
            Status = DeploymentStatus.Starting,
            Endpoint = app.Endpoint,
            // Probes take the customers' path: the environment's ingress answers inside and outside the environment alike.
            ProbeEndpoint = app.Endpoint,
            Version = app.Tag(VersionTag),
            Size = app.Tag(SizeTag),
            Generation = long.TryParse(app.Tag(GenerationTag), CultureInfo.InvariantCulture, out var generation) ? generation : 0,
            Restarts = app.Restarts,
            ProcessStarts = Starts(app),
        };
        if (app.RunningStatus == "Stopped")
        {
            return observed with { Status = DeploymentStatus.Stopped, Detail = "Stopped: the data and the address are kept." };
        }

        if (app.ProvisioningState != "Succeeded" || !app.LatestRevisionReady || app.Endpoint is not { } endpoint)
        {
            return observed with
            {
                Health = DeploymentHealth.Unhealthy,
                Detail = $"The Container App is {app.ProvisioningState ?? "being created"}; revision {(string?)app.Properties["latestRevisionName"]} is not ready yet.",
            };
        }

        var ping = await RespPingProbe.PingAsync(endpoint.Host, endpoint.Port, InstanceAccess.PlatformUser, desired.PlatformPassword.Value, ProbeTimeout, cancellationToken);
        return observed with
        {
            Status = ping.Answered ? DeploymentStatus.Running : DeploymentStatus.Starting,
            Health = ping.Answered ? DeploymentHealth.Healthy : DeploymentHealth.Unhealthy,
            ProbeLatency = ping.Answered ? ping.Latency : null,
            Detail = ping.Detail,
        };
    }

    private async Task DeleteAsync(DeploymentSpec desired, CancellationToken cancellationToken)
    {
        var group = ResourceGroup(Settings, desired);
        // The tombstone goes first: once the app is gone it is what keeps a late command from recreating it.
        if (await arm.ReadGroupAsync(group, cancellationToken) is { } tags)
        {
            var kept = tags.Where(tag => tag.Key.StartsWith(DeletedTagPrefix, StringComparison.Ordinal))
                .OrderByDescending(tag => tag.Key, StringComparer.Ordinal)
                .Take(KeptTombstones - 1)
                .ToDictionary(tag => tag.Key, tag => tag.Value, StringComparer.Ordinal);
            kept[DeletedTagPrefix + AppName(desired)] = desired.Generation.ToString(CultureInfo.InvariantCulture);
            await arm.EnsureGroupAsync(group, desired.TenantId, kept, cancellationToken);
        }

        await arm.DeleteAppAsync(group, AppName(desired), cancellationToken);
    }

    private static long Starts(ContainerApp? app) => long.TryParse(app?.Tag(StartsTag), CultureInfo.InvariantCulture, out var starts) ? starts : 0;

    private CatalogOffering Resolve(DeploymentSpec desired) => CloudOfferings.Resolve(catalog, desired, "Azure");

    private static string Describe(CatalogOffering offering) => CloudOfferings.Describe(offering);
}
