using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization;
using Billing.Storage;
using Billing.Stripe;
using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Instances;
using ControlPlane.Persistence;
using ControlPlane.Provisioning;
using ControlPlane.Security;
using ControlPlane.Tenants;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.OpenApi;
using Orleans.Configuration;
using Orleans.Runtime.Hosting;
using Provisioner;
using Provisioner.Local;
using Provisioner.Messaging;

namespace ControlPlane.Hosting;

public static class ControlPlaneHostingExtensions
{
    /// <summary>
    /// Everything the embedded control plane needs: one SQLite file, an Orleans silo with localhost
    /// clustering, the in-process provisioning workers, API-key authentication, problem+json and OpenAPI.
    /// </summary>
    public static WebApplicationBuilder AddControlPlane(this WebApplicationBuilder builder, string[] args)
    {
        AddConfigurationSources(builder, args);
        var options = builder.Configuration.GetSection(ControlPlaneOptions.SectionName).Get<ControlPlaneOptions>() ?? new ControlPlaneOptions();
        var dataDirectory = Path.GetFullPath(options.DataDir, builder.Environment.ContentRootPath);
        Directory.CreateDirectory(dataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var dataDirectoryLock = DataDirectoryLock.Acquire(dataDirectory);
        var database = new ControlPlaneDatabase(dataDirectory);

        var services = builder.Services;
        services.AddSingleton(dataDirectoryLock);
        services.AddControlPlaneCore(builder.Configuration, database);
        services.AddHostedService<InstanceWakeUpService>();

        services.AddMemoryCache();
        services.AddSingleton<ApiKeyStore>();
        services.AddSingleton<AuditLog>();
        services.AddHostedService<AdminApiKeyBootstrapper>();
        services.AddSingleton(BillingStorage(builder.Configuration, database));
        services.AddStripeBilling(builder.Configuration);
        services.AddSingleton<IStripeCustomerSink, TenantStripeCustomerSink>();
        // Authentication always brings ASP.NET data protection, which this API does not use (no cookies or
        // tokens); keep its key ring inside the data directory instead of the user's home.
        services.AddDataProtection()
            .SetApplicationName("controlplane")
            .PersistKeysToFileSystem(new DirectoryInfo(Path.Combine(database.DataDirectory, "data-protection-keys")));
        services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, _ => { });
        services.AddAuthorizationBuilder()
            .SetFallbackPolicy(new Microsoft.AspNetCore.Authorization.AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build());

        services.AddProblemDetails(problems => problems.CustomizeProblemDetails = ProblemResponses.DescribeFrameworkProblem);
        services.AddExceptionHandler<ProblemExceptionHandler>();
        services.Configure<RouteHandlerOptions>(route => route.ThrowOnBadRequest = true);
        services.ConfigureHttpJsonOptions(json => ConfigureJson(json.SerializerOptions));
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = 64 * 1024);
        services.AddOpenApi(openApi => openApi.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "Control plane API";
            document.Info.Description = "Create and operate hosted instances. Authenticate with 'Authorization: Bearer <api key>'.";
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes["bearer"] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = "An API key, e.g. the one in <dataDir>/admin-api-key.",
            };
            document.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("bearer", document)] = [] }];
            return Task.CompletedTask;
        }));
        services.AddHealthChecks()
            .AddCheck<DatabaseHealthCheck>("database", tags: ["ready"])
            .AddCheck<SiloHealthCheck>("silo", tags: ["ready"]);

        builder.UseOrleans(silo =>
        {
            UseEmbeddedClustering(silo, builder.Configuration);
            silo.AddControlPlaneStorage();
        });
        return builder;
    }

    /// <summary>
    /// The domain's services, shared by every host of the silo (the web host, the grain tests' cluster):
    /// options, the provisioning workers and the route from worker events back to grains.
    /// </summary>
    public static IServiceCollection AddControlPlaneCore(this IServiceCollection services, IConfiguration configuration, ControlPlaneDatabase database)
    {
        services.AddSingleton(database);
        services.AddSingleton(TimeProvider.System);
        services.Configure<PlanOptions>(configuration.GetSection(PlanOptions.SectionName));
        services.Configure<ReconcileOptions>(configuration.GetSection(ReconcileOptions.SectionName));
        services.Configure<InstanceOptions>(configuration.GetSection(InstanceOptions.SectionName));
        services.AddProvisioner(configuration);
        services.PostConfigure<LocalBackendOptions>(local =>
        {
            if (string.IsNullOrEmpty(local.InstancesDirectory))
            {
                local.InstancesDirectory = Path.Combine(database.DataDirectory, "instances");
            }
        });
        services.AddSingleton<IProvisioningEventSink, GrainProvisioningEventSink>();
        return services;
    }

    /// <summary>Grain state and reminders in the control plane's SQLite file.</summary>
    public static ISiloBuilder AddControlPlaneStorage(this ISiloBuilder silo)
    {
        silo.Services.AddGrainStorage(StorageNames.ControlPlane, (provider, _) => new SqliteGrainStorage(provider.GetRequiredService<ControlPlaneDatabase>()));
        silo.Services.AddSingleton<IReminderTable, SqliteReminderTable>();
        silo.AddReminders();
        return silo;
    }

    public static WebApplication UseControlPlane(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapOpenApi().AllowAnonymous();
        app.MapHealthChecks("/healthz", new() { Predicate = _ => false }).AllowAnonymous();
        app.MapHealthChecks("/readyz", new() { Predicate = check => check.Tags.Contains("ready") }).AllowAnonymous();
        return app;
    }

    public static void ConfigureJson(JsonSerializerOptions json)
    {
        json.PropertyNamingPolicy = JsonNamingPolicy.CamelCase;
        json.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
        // A mistyped field ("sise") is an error, not silently ignored.
        json.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
        // Lifecycle states read as DESIGN.md writes them (Running, Stopped); other enums are camelCase (running, succeeded).
        json.Converters.Add(new JsonStringEnumConverter<InstanceLifecycle>());
        json.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.CamelCase, allowIntegerValues: false));
    }

    /// <summary>Billing's rows: the control plane's SQLite file when embedded, PostgreSQL (<c>ConnectionStrings:ControlPlane</c>) in a cluster.</summary>
    private static BillingDatabase BillingStorage(ConfigurationManager configuration, ControlPlaneDatabase database) =>
        string.Equals(configuration["ControlPlane:Mode"], "Cluster", StringComparison.OrdinalIgnoreCase)
            ? new BillingDatabase(BillingDatabaseProvider.Postgres, configuration.GetConnectionString("ControlPlane")
                ?? throw new InvalidOperationException("Cluster mode needs ConnectionStrings:ControlPlane (PostgreSQL)."))
            : new BillingDatabase(BillingDatabaseProvider.Sqlite, $"Data Source={database.FilePath}");

    private static void AddConfigurationSources(WebApplicationBuilder builder, string[] args) =>
        builder.Configuration.AddCommandLine(args, new Dictionary<string, string>
        {
            ["--data-dir"] = $"{ControlPlaneOptions.SectionName}:{nameof(ControlPlaneOptions.DataDir)}",
        });

    private static void UseEmbeddedClustering(ISiloBuilder silo, ConfigurationManager configuration)
    {
        var options = configuration.GetSection(SiloOptions.SectionName).Get<SiloOptions>() ?? new SiloOptions();
        var siloPort = options.SiloPort == 0 ? FreeLoopbackPort() : options.SiloPort;
        silo.UseLocalhostClustering(siloPort, options.GatewayPort, serviceId: options.ServiceId, clusterId: options.ClusterId);
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
