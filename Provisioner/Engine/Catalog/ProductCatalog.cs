using Microsoft.Extensions.Options;

namespace Provisioner.Catalog;

/// <summary>A product, version and size that exist together in the catalog.</summary>
public sealed record CatalogOffering(
    string Product,
    string Version,
    string Size,
    ProductDefinition Definition,
    ProductVersion VersionDefinition,
    ProductSize SizeDefinition);

/// <summary>Looks products, versions and sizes up in the configured catalog.</summary>
public sealed class ProductCatalog(IOptionsMonitor<CatalogOptions> options)
{
    public IReadOnlyDictionary<string, ProductDefinition> Products => options.CurrentValue.Products;

    /// <summary>
    /// Resolves a request's product, version and size, filling in the product's defaults for a missing
    /// version or size. On failure, <paramref name="errors"/> names each offending field and what is allowed.
    /// </summary>
    public bool TryResolve(
        string? product,
        string? version,
        string? size,
        out CatalogOffering offering,
        out Dictionary<string, string[]> errors)
    {
        offering = null!;
        errors = [];
        if (string.IsNullOrWhiteSpace(product))
        {
            errors["product"] = [$"Product is required. Available: {Join(Products.Keys)}."];
            return false;
        }

        if (!Products.TryGetValue(product, out var definition))
        {
            errors["product"] = [$"Unknown product '{product}'. Available: {Join(Products.Keys)}."];
            return false;
        }

        var versionName = string.IsNullOrEmpty(version) ? definition.DefaultVersion : version;
        if (!definition.Versions.TryGetValue(versionName, out var versionDefinition))
        {
            errors["version"] = [$"Unknown version '{versionName}' of {product}. Available: {Join(definition.Versions.Keys)}."];
        }

        var sizeName = string.IsNullOrEmpty(size) ? definition.DefaultSize : size;
        if (!definition.Sizes.TryGetValue(sizeName, out var sizeDefinition))
        {
            errors["size"] = [$"Unknown size '{sizeName}' of {product}. Available: {Join(definition.Sizes.Keys)}."];
        }

        if (errors.Count > 0)
        {
            return false;
        }

        offering = new CatalogOffering(product, versionName, sizeName, definition, versionDefinition!, sizeDefinition!);
        return true;
    }

    private static string Join(IEnumerable<string> names) => string.Join(", ", names.Order(StringComparer.Ordinal));
}

/// <summary>Refuses to start with a catalog that could never serve a request.</summary>
public sealed class CatalogOptionsValidator : IValidateOptions<CatalogOptions>
{
    public ValidateOptionsResult Validate(string? name, CatalogOptions options)
    {
        var failures = new List<string>();
        if (options.Products.Count == 0)
        {
            failures.Add("Catalog:Products is empty: configure at least one product.");
        }

        foreach (var (productName, product) in options.Products)
        {
            if (product.Versions.Count == 0)
            {
                failures.Add($"Catalog product '{productName}' has no versions.");
            }
            else if (!product.Versions.ContainsKey(product.DefaultVersion))
            {
                failures.Add($"Catalog product '{productName}': DefaultVersion '{product.DefaultVersion}' is not one of its versions.");
            }

            if (product.Sizes.Count == 0)
            {
                failures.Add($"Catalog product '{productName}' has no sizes.");
            }
            else if (!product.Sizes.ContainsKey(product.DefaultSize))
            {
                failures.Add($"Catalog product '{productName}': DefaultSize '{product.DefaultSize}' is not one of its sizes.");
            }

            failures.AddRange(product.Sizes
                .Where(size => size.Value.MemoryMb <= 0)
                .Select(size => $"Catalog product '{productName}' size '{size.Key}' needs a positive MemoryMb."));
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
