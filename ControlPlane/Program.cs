using ControlPlane.Auditing;
using ControlPlane.Catalog;
using ControlPlane.Compliance;
using ControlPlane.Finance;
using ControlPlane.Hosting;
using ControlPlane.Identity;
using ControlPlane.Instances;
using ControlPlane.Operations;
using ControlPlane.Portal;
using ControlPlane.Provisioning.Dapr;
using ControlPlane.Security;
using ControlPlane.Sla;
using ControlPlane.Tenants;

try
{
    var builder = WebApplication.CreateBuilder(args);
    builder.AddControlPlane(args);

    var app = builder.Build();
    app.UseControlPlane();
    app.MapCatalog();
    app.MapTenants();
    app.MapMembers();
    app.MapSso();
    app.MapApiKeys();
    app.MapInstances();
    app.MapOperations();
    app.MapProvisioningSubscriptions();
    app.MapSla();
    app.MapFinance();
    app.MapCompliance();
    app.MapAudit();
    app.MapPortal();

    app.Run();
    return 0;
}
catch (Exception refused) when (refused is StartupFailedException or ControlPlane.Persistence.DatabaseMigrationException)
{
    Console.Error.WriteLine($"The control plane did not start: {refused.Message}");
    return 1;
}

/// <summary>Entry point, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
