using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Provisioner.Catalog;
using Provisioner.Deployments;

namespace Provisioner.Azure;

/// <summary>The names, tags and Container App body of one instance (Microsoft.App/containerApps).</summary>
public static partial class ContainerAppManifest
{
    public const string TenantTag = "controlplane.io-tenant";
    public const string InstanceTag = "controlplane.io-instance";
    public const string GenerationTag = "controlplane.io-generation";
    public const string ProductTag = "controlplane.io-product";
    public const string VersionTag = "controlplane.io-version";
    public const string SizeTag = "controlplane.io-size";
    public const string StartsTag = "controlplane.io-starts";
    /// <summary>A salted digest of the password: ARM never returns secret values, and a rotated password must reach the app.</summary>
    public const string SecretDigestTag = "controlplane.io-secret";
    public const string DeletedTagPrefix = "controlplane.io-deleted-";
    /// <summary>A template variable: a new value makes a new revision, which restarts the container with its data.</summary>
    public const string RestartsVariable = "CONTROLPLANE_RESTARTS";
    /// <summary>The app secret holding the instance's access control file (<see cref="InstanceAccess"/>).</summary>
    public const string AccessControlSecret = "instance-acl";

    /// <summary>A template variable: new credentials make a new revision, whose container reads the new access control file.</summary>
    public const string CredentialsVariable = "CONTROLPLANE_CREDENTIALS";

    public const string ManagedByTag = "managed-by";
    public const string ManagedBy = "controlplane";

    public static string ResourceGroup(AzureBackendOptions options, DeploymentSpec spec) => options.ResourceGroupPrefix + spec.TenantId;

    /// <summary>
    /// Whether a resource group's tags say it is this tenant's, made by the backend. The identity may write any group of the
    /// subscription (Azure's RBAC cannot match a name prefix), so the backend itself never places into or deletes another.
    /// </summary>
    public static bool IsTenantsGroup(IDictionary<string, string> tags, string tenantId) =>
        tags.TryGetValue(ManagedByTag, out var managedBy) && managedBy == ManagedBy
        && tags.TryGetValue(TenantTag, out var tenant) && tenant == tenantId;

    public static DeploymentFailedException ForeignGroup(string group, string tenantId) => new(
        "azure-foreign-group",
        $"Resource group {group} exists but is not tenant {tenantId}'s (its tags {TenantTag} and {ManagedByTag} say otherwise), so the " +
        "provisioner neither places instances in it nor deletes it. Rename or remove that group, or choose another Provisioner:Azure:ResourceGroupPrefix.");

    public static string AppName(DeploymentSpec spec) =>
        AppNamePattern().IsMatch(spec.InstanceId)
            ? spec.InstanceId
            : throw new DeploymentFailedException(
                "invalid-name",
                $"The instance id '{spec.InstanceId}' cannot name a Container App: use 2 to 32 lower-case letters, digits and '-', starting with a letter.");

    /// <param name="starts">What the backend's starts count will be once this is applied.</param>
    public static JsonObject Build(AzureBackendOptions options, DeploymentSpec spec, CatalogOffering offering, long starts)
    {
        var container = offering.Definition.Container!;
        var size = offering.SizeDefinition;
        var cores = size.CpuMillicores / 1000.0;
        var ingress = new JsonObject
        {
            ["external"] = options.ExternalIngress,
            ["transport"] = "tcp",
            ["targetPort"] = container.Port,
            ["exposedPort"] = container.Port,
        };
        if (options.AllowedCidrs.Count > 0)
        {
            ingress["ipSecurityRestrictions"] = new JsonArray([.. options.AllowedCidrs.Select((cidr, index) => (JsonNode)new JsonObject
            {
                ["name"] = $"allowed-{index}",
                ["action"] = "Allow",
                ["ipAddressRange"] = cidr,
            })]);
        }

        var definition = new JsonObject
        {
            ["name"] = "server",
            ["image"] = offering.VersionDefinition.Image,
            ["args"] = new JsonArray([.. ContainerArguments.Render(offering).Select(argument => (JsonNode)argument)]),
            ["env"] = new JsonArray(
                new JsonObject { ["name"] = container.AccessControlEnvironmentVariable, ["secretRef"] = AccessControlSecret },
                new JsonObject { ["name"] = RestartsVariable, ["value"] = spec.Restarts.ToString(CultureInfo.InvariantCulture) },
                new JsonObject { ["name"] = CredentialsVariable, ["value"] = InstanceAccess.Digest(spec) }),
            ["resources"] = new JsonObject
            {
                ["cpu"] = cores,
                // Consumption profiles pair each quarter core with half a GiB.
                ["memory"] = $"{(cores * 2).ToString("0.##", CultureInfo.InvariantCulture)}Gi",
            },
            ["probes"] = new JsonArray(
                new JsonObject { ["type"] = "Readiness", ["tcpSocket"] = new JsonObject { ["port"] = container.Port }, ["periodSeconds"] = 5 },
                new JsonObject { ["type"] = "Liveness", ["tcpSocket"] = new JsonObject { ["port"] = container.Port }, ["initialDelaySeconds"] = 30, ["periodSeconds"] = 10 }),
            ["volumeMounts"] = new JsonArray(new JsonObject { ["volumeName"] = "data", ["mountPath"] = container.DataPath, ["subPath"] = spec.InstanceId }),
        };
        if (container.Command.Count > 0)
        {
            definition["command"] = new JsonArray([.. container.Command.Select(part => (JsonNode)part)]);
        }

        return new JsonObject
        {
            ["location"] = options.Location,
            ["tags"] = new JsonObject
            {
                [TenantTag] = spec.TenantId,
                [InstanceTag] = spec.InstanceId,
                [GenerationTag] = spec.Generation.ToString(CultureInfo.InvariantCulture),
                [ProductTag] = spec.Product,
                [VersionTag] = spec.Version,
                [SizeTag] = spec.Size,
                [StartsTag] = starts.ToString(CultureInfo.InvariantCulture),
                [SecretDigestTag] = SecretDigest(spec),
            },
            ["properties"] = new JsonObject
            {
                ["managedEnvironmentId"] = options.ManagedEnvironmentId,
                ["configuration"] = new JsonObject
                {
                    ["activeRevisionsMode"] = "Single",
                    ["secrets"] = new JsonArray(new JsonObject { ["name"] = AccessControlSecret, ["value"] = InstanceAccess.AccessControlFile(spec) }),
                    ["ingress"] = ingress,
                },
                ["template"] = new JsonObject
                {
                    ["containers"] = new JsonArray(definition),
                    ["scale"] = new JsonObject { ["minReplicas"] = 1, ["maxReplicas"] = 1 },
                    ["volumes"] = new JsonArray(new JsonObject { ["name"] = "data", ["storageType"] = "AzureFile", ["storageName"] = options.StorageName }),
                },
            },
        };
    }

    public static string SecretDigest(DeploymentSpec spec) => InstanceAccess.Digest(spec);

    [GeneratedRegex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$")]
    private static partial Regex AppNamePattern();
}
