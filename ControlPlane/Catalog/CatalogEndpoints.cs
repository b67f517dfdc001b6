using ControlPlane.Security;
using Provisioner.Catalog;

namespace ControlPlane.Catalog;

public sealed record CatalogSize(string Name, string Description, int MemoryMb);

public sealed record CatalogVersion(string Name, string? ReleaseNotes);

public sealed record CatalogProduct(
    string Name,
    string DisplayName,
    string Description,
    string DefaultVersion,
    IReadOnlyList<CatalogVersion> Versions,
    string DefaultSize,
    IReadOnlyList<CatalogSize> Sizes,
    bool Tls);

public sealed record CatalogResponse(IReadOnlyList<CatalogProduct> Products);

public static class CatalogEndpoints
{
    public static IEndpointRouteBuilder MapCatalog(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/v1/catalog", GetCatalog).ForAnyAuthenticatedCaller().WithTags("Catalog").WithSummary("Products, versions and sizes that can be created");
        return app;
    }

    private static CatalogResponse GetCatalog(ProductCatalog catalog) => Describe(catalog);

    /// <summary>The catalog as customers see it: products by name, sizes smallest first (the API and the portal's create form).</summary>
    public static CatalogResponse Describe(ProductCatalog catalog) => new([
        .. catalog.Products
            .OrderBy(product => product.Key, StringComparer.Ordinal)
            .Select(product => new CatalogProduct(
                product.Key,
                product.Value.DisplayName,
                product.Value.Description,
                product.Value.DefaultVersion,
                [.. product.Value.Versions.Select(version => new CatalogVersion(version.Key, version.Value.ReleaseNotes))],
                product.Value.DefaultSize,
                [.. product.Value.Sizes
                    .OrderBy(size => size.Value.MemoryMb)
                    .Select(size => new CatalogSize(size.Key, size.Value.Description, size.Value.MemoryMb))],
                OffersTls(product.Value))),
    ]);

    /// <summary>Whether instances of <paramref name="product"/> may be created with <c>tls</c>: its launch says how to serve TLS.</summary>
    public static bool OffersTls(ProductDefinition product) => product.Local is { TlsArguments.Count: > 0 };
}
