using Provisioner.Deployments;

namespace Provisioner.Catalog;

/// <summary>What a cloud backend runs for a spec: the catalog's offering, refused with what to set when it has no container.</summary>
public static class CloudOfferings
{
    public static CatalogOffering Resolve(ProductCatalog catalog, DeploymentSpec desired, string platform)
    {
        if (!catalog.TryResolve(desired.Product, desired.Version, desired.Size, out var offering, out var errors))
        {
            throw new DeploymentFailedException("unknown-offering", string.Join(" ", errors.Values.SelectMany(messages => messages)));
        }

        if (offering.Definition.Container is null || string.IsNullOrEmpty(offering.VersionDefinition.Image))
        {
            throw new DeploymentFailedException(
                "backend-unsupported",
                $"{offering.Definition.DisplayName} {offering.Version} cannot run on {platform}: set Catalog:Products:{offering.Product}:Container " +
                $"and Catalog:Products:{offering.Product}:Versions:{offering.Version}:Image.");
        }

        return offering;
    }

    public static string Describe(CatalogOffering offering) => $"{offering.Definition.DisplayName} {offering.Version} ({offering.Size})";
}
