using Provisioner.Commands;
using Provisioner.Hosting;
using Provisioner.Messaging.Dapr;

var builder = WebApplication.CreateBuilder(args);
builder.AddProvisionerApp(args);

var app = builder.Build();
app.UseCloudEvents();
app.MapSubscribeHandler().RequireDaprAppToken();
app.MapProvisioningCommands();
app.MapHealthChecks("/healthz");

app.Run();

/// <summary>Entry point, visible to WebApplicationFactory in the tests.</summary>
public partial class Program;
