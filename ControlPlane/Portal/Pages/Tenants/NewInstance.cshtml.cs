using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Catalog;
using ControlPlane.Errors;
using ControlPlane.Instances;
using ControlPlane.Security;
using Microsoft.AspNetCore.Mvc;
using Provisioner.Catalog;

namespace ControlPlane.Portal.Pages.Tenants;

/// <summary>Creates an instance from the catalog (<c>instances:operate</c>, through the API's own <see cref="InstanceEndpoints.CreateInstanceAsync"/>).</summary>
public sealed class NewInstanceModel(IGrainFactory grains, ProductCatalog catalog, AuditLog audit) : TenantPage(grains)
{
    public CatalogResponse Catalog { get; } = CatalogEndpoints.Describe(catalog);

    public string? Name { get; private set; }

    public string? Size { get; private set; }

    public (string Title, string Detail)? Error { get; private set; }

    public async Task OnGetAsync() => await LoadTenantAsync(Permissions.InstancesOperate, "dashboard");

    public async Task<IActionResult> OnPostAsync(string? name, string? product, string? version, string? size)
    {
        await LoadTenantAsync(Permissions.InstancesOperate, "dashboard");
        (Name, Size) = (name, size);
        try
        {
            var operation = await InstanceEndpoints.CreateInstanceAsync(
                TenantId, new CreateInstanceRequest(name?.Trim(), product, version, size), HttpContext, Grains, catalog, audit);
            Notice = $"Creating {name}. It is ready when its state says Running.";
            return RedirectToPage("/Tenants/Dashboard", new { tenantId = TenantId, created = operation.InstanceId });
        }
        catch (RequestValidationException invalid)
        {
            Error = ("Check the form", PortalProblemWriter.Describe(invalid));
            return WithStatus(StatusCodes.Status400BadRequest);
        }
        catch (ControlPlaneException refused) when (refused.Kind is not ProblemKind.NotFound)
        {
            Error = (refused.Title, refused.Detail);
            return WithStatus(ProblemResponses.StatusFor(refused.Kind));
        }
    }
}
