using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization;
using Billing;
using Billing.Sla;
using Billing.Stripe;
using ControlPlane.Api;
using ControlPlane.Auditing;
using ControlPlane.Identity;
using ControlPlane.Instances;
using ControlPlane.Persistence;
using ControlPlane.Portal;
using ControlPlane.Provisioning;
using ControlPlane.Provisioning.Dapr;
using ControlPlane.Secrets;
using ControlPlane.Security;
using ControlPlane.Sla;
using ControlPlane.Tenants;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.OpenApi;
using Npgsql;
using Orleans.Configuration;
using Orleans.Runtime.Hosting;

namespace ControlPlane.Hosting;

public static class ControlPlaneHostingExtensions
{
    /// <summary>
    /// Everything the control plane needs: its database, an Orleans silo, the in-process provisioning workers,
    /// API-key authentication, problem+json and OpenAPI. <c>ControlPlane:Mode</c> chooses the adapters: embedded
    /// (one SQLite file, localhost clustering) or cluster (PostgreSQL for membership, reminders, grain state, API
    /// keys and the audit log, shared by every silo).
    /// </summary>
    public static WebApplicationBuilder AddControlPlane(this WebApplicationBuilder builder, string[] args)
    {
        AddConfigurationSources(builder, args);
        var options = builder.Configuration.GetSection(ControlPlaneOptions.SectionName).Get<ControlPlaneOptions>() ?? new ControlPlaneOptions();
        var dataDirectory = new DataDirectory(Path.GetFullPath(options.DataDir, builder.Environment.ContentRootPath));
        // Others may pass through (0711), never list: hosted instances' own users reach their data in instances/ that way.
        Directory.CreateDirectory(dataDirectory.Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.OtherExecute);
        var correctedPermissions = DataDirectoryPermissions.Enforce(dataDirectory);
        var dataDirectoryLock = DataDirectoryLock.Acquire(dataDirectory.Path);
        var databaseOptions = builder.Configuration.GetSection(DatabaseOptions.SectionName).Get<DatabaseOptions>() ?? new DatabaseOptions();
        var clusterConnectionString = options.Mode == ControlPlaneMode.Cluster ? RequireClusterConnectionString(builder.Configuration) : null;
        var database = clusterConnectionString is null
            ? Database.Sqlite(dataDirectory.File(EmbeddedDatabaseFile), databaseOptions)
            : OpenClusterDatabase(clusterConnectionString, databaseOptions);

        var services = builder.Services;
        services.AddSingleton(dataDirectoryLock);
        services.AddHostedService(provider => new CorrectedPermissionsLog(correctedPermissions, provider.GetRequiredService<ILogger<CorrectedPermissionsLog>>()));
        services.AddControlPlaneCore(builder.Configuration, database, dataDirectory);
        services.AddHostedService<InstanceWakeUpService>();

        services.AddMemoryCache();
        services.AddMigrations([ApiKeyStore.Migration, UserDirectory.Migration, ApiKeyStore.LifecycleMigration, SsoSettingsStore.Migration, LocalAccounts.Migration]);
        services.AddSingleton<ApiKeyStore>();
        services.AddIdentity();
        services.AddSso();
        services.AddHostedService<AdminApiKeyBootstrapper>();
        if (database.IsShared)
        {
            services.AddHostedService<ApiKeyRevocationListener>();
        }

        // Data protection encrypts the portal's cookies and tenants' SSO client secrets at rest. Embedded, its key ring
        // lives in the data directory (not the user's home), private from its first moment (the ring's own default
        // leaves the directory readable to others). In cluster mode it lives in the shared database: a secret stored
        // or a cookie issued by one silo must be readable by every other.
        services.AddMigrations([DatabaseKeyRing.Migration]);
        var dataProtection = services.AddDataProtection().SetApplicationName("controlplane");
        if (database.IsShared)
        {
            dataProtection.AddKeyManagementOptions(keys => keys.XmlRepository = new DatabaseKeyRing(database));
        }
        else
        {
            dataProtection.PersistKeysToFileSystem(
                Directory.CreateDirectory(dataDirectory.File("data-protection-keys"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute));
        }

        services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, _ => { })
            .AddPortalSession();
        services.AddAuthorizationBuilder()
            .SetFallbackPolicy(new Microsoft.AspNetCore.Authorization.AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build());

        services.AddRequestRateLimits(builder.Configuration);
        services.AddProblemDetails(problems => problems.CustomizeProblemDetails = ProblemResponses.DescribeFrameworkProblem);
        services.AddPortal(builder.Configuration);
        services.AddExceptionHandler<ProblemExceptionHandler>();
        services.Configure<RouteHandlerOptions>(route => route.ThrowOnBadRequest = true);
        services.ConfigureHttpJsonOptions(json => ConfigureJson(json.SerializerOptions));
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = 64 * 1024);
        builder.AddHttps();
        if (ProvisioningTransportExtensions.TransportOf(builder.Configuration) == ProvisioningTransport.Dapr)
        {
            // The sidecar's own listener: the Dapr routes answer there only, never on the public API's port.
            var channel = DaprAppChannel.From(builder.Configuration);
            channel.Listen(builder);
            services.AddSingleton(channel);
        }

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
            if (clusterConnectionString is null)
            {
                UseEmbeddedClustering(silo, builder.Configuration);
            }
            else
            {
                UseClusterMembership(silo, builder.Configuration, clusterConnectionString);
            }

            silo.AddControlPlaneStorage(clusterConnectionString);
            silo.UseSiloTls(builder.Configuration, clusterMode: clusterConnectionString is not null);
        });
        return builder;
    }

    /// <summary>
    /// The domain's services, shared by every host of the silo (the web host, the grain tests' cluster):
    /// options, the provisioning transport (in-process workers, or Dapr) and the route from worker events back to grains.
    /// </summary>
    public static IServiceCollection AddControlPlaneCore(this IServiceCollection services, IConfiguration configuration, Database database, DataDirectory dataDirectory)
    {
        // First, so every table exists before anything else starts: the migrator is the first hosted service.
        services.AddSingleton(database);
        services.AddDatabaseMigrator();
        services.AddMigrations(Migrations.Storage);
        services.AddSingleton(dataDirectory);
        services.AddSecretEnvelopes(configuration, dataDirectory, database.IsShared);
        services.AddSingleton(TimeProvider.System);
        services.AddOptions<PlanOptions>().Bind(configuration.GetSection(PlanOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<Microsoft.Extensions.Options.IValidateOptions<PlanOptions>, PlanOptionsValidator>();
        services.AddOptions<ReconcileOptions>().Bind(configuration.GetSection(ReconcileOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<Microsoft.Extensions.Options.IValidateOptions<ReconcileOptions>, ReconcileOptionsValidator>();
        services.AddOptions<RetentionOptions>().Bind(configuration.GetSection(RetentionOptions.SectionName)).ValidateOnStart();
        services.AddSingleton<Microsoft.Extensions.Options.IValidateOptions<RetentionOptions>, RetentionOptionsValidator>();
        services.Configure<InstanceOptions>(configuration.GetSection(InstanceOptions.SectionName));
        services.AddProvisioningTransport(configuration, dataDirectory);
        services.AddBilling(configuration);
        services.AddSingleton<ITenantPlans, TenantPlansForBilling>();
        services.AddSingleton<IStripeCustomerSink, TenantStripeCustomerSink>();
        // Grains write the audit records of the changes the system makes on its own (Instances/SystemChanges.cs).
        services.AddAuditTrail(configuration);
        return services;
    }

    /// <summary>
    /// Grain state in the control plane's database (JSON rows, whichever the provider); reminders in the SQLite file, or,
    /// given cluster mode's PostgreSQL, with Orleans' ADO.NET reminder table over the schema in <c>Persistence/Postgres</c>.
    /// </summary>
    public static ISiloBuilder AddControlPlaneStorage(this ISiloBuilder silo, string? clusterConnectionString = null)
    {
        silo.Services.AddGrainStorage(StorageNames.ControlPlane, (provider, _) => new JsonGrainStorage(provider.GetRequiredService<Database>()));
        if (clusterConnectionString is null)
        {
            silo.Services.AddSingleton<IReminderTable, SqliteReminderTable>();
        }
        else
        {
            silo.UseAdoNetReminderService(reminders =>
            {
                reminders.Invariant = PostgresInvariant;
                reminders.ConnectionString = clusterConnectionString;
            });
        }

        silo.AddReminders();
        return silo;
    }

    public static WebApplication UseControlPlane(this WebApplication app)
    {
        // The container does not dispose an instance it was handed; a host stopped inside a longer-lived process (a
        // restart in tests) must still release the data directory for the next one.
        app.Lifetime.ApplicationStopped.Register(() => app.Services.GetRequiredService<DataDirectoryLock>().Dispose());
        app.UseExceptionHandler();
        // Only on HTTPS responses; nothing on the plain listeners (the Dapr app channel, a probe port).
        app.UseHsts();
        app.UseStatusCodePages();
        app.UseProvisioningSubscriptions();
        // Before authentication, so a flood of made-up keys reaches the key store no faster than its address's rate.
        app.UseRateLimiter();
        app.UseAuditTrail();
        app.UseAuthenticationFailureLimit();
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapOpenApi().AllowAnonymous();
        app.MapHealthChecks("/healthz", new() { Predicate = _ => false }).AllowAnonymous().DisableRateLimiting();
        app.MapHealthChecks("/readyz", new() { Predicate = check => check.Tags.Contains("ready") }).AllowAnonymous().DisableRateLimiting();
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

    private static void AddConfigurationSources(WebApplicationBuilder builder, string[] args) =>
        builder.Configuration.AddCommandLine(args, new Dictionary<string, string>
        {
            ["--data-dir"] = $"{ControlPlaneOptions.SectionName}:{nameof(ControlPlaneOptions.DataDir)}",
        });

    private static void UseEmbeddedClustering(ISiloBuilder silo, ConfigurationManager configuration)
    {
        var options = configuration.GetSection(SiloOptions.SectionName).Get<SiloOptions>() ?? new SiloOptions();
        var siloPort = options.SiloPort == 0 ? FreePort(IPAddress.Loopback) : options.SiloPort;
        silo.UseLocalhostClustering(siloPort, options.GatewayPort, serviceId: options.ServiceId, clusterId: options.ClusterId ?? "embedded");
    }

    /// <summary>The embedded SQLite file in the data directory.</summary>
    private const string EmbeddedDatabaseFile = "controlplane.db";

    /// <summary>The Npgsql ADO.NET invariant name, by which the Orleans ADO.NET providers load PostgreSQL's driver.</summary>
    private const string PostgresInvariant = "Npgsql";

    private static string RequireClusterConnectionString(ConfigurationManager configuration) =>
        configuration.GetConnectionString(ControlPlaneOptions.ConnectionStringName) is { Length: > 0 } connectionString
            ? connectionString
            : throw new StartupFailedException(
                $"ControlPlane:Mode is Cluster but ConnectionStrings:{ControlPlaneOptions.ConnectionStringName} is not set. " +
                $"Give the PostgreSQL connection string, e.g. ConnectionStrings__{ControlPlaneOptions.ConnectionStringName}=\"Host=…;Username=…;Password=…;Database=…\".");

    private static Database OpenClusterDatabase(string connectionString, DatabaseOptions options)
    {
        try
        {
            // Before the host is built, so a silo that cannot reach its database never joins the cluster.
            var database = Database.Postgres(connectionString, options);
            database.OpenAsync().GetAwaiter().GetResult().Dispose();
            return database;
        }
        catch (Exception exception) when (exception is NpgsqlException or ArgumentException or InvalidOperationException)
        {
            throw new StartupFailedException($"Could not prepare the PostgreSQL database {Describe(connectionString)}: {exception.Message}", exception);
        }
    }

    /// <summary>The database and server a connection string names, never the password it may hold.</summary>
    private static string Describe(string connectionString)
    {
        try
        {
            var target = new NpgsqlConnectionStringBuilder(connectionString);
            return $"{target.Database} on {target.Host}:{target.Port}";
        }
        catch (ArgumentException)
        {
            return $"of ConnectionStrings:{ControlPlaneOptions.ConnectionStringName} (the connection string is malformed)";
        }
    }

    private static void UseClusterMembership(ISiloBuilder silo, ConfigurationManager configuration, string connectionString)
    {
        var options = configuration.GetSection(SiloOptions.SectionName).Get<SiloOptions>() ?? new SiloOptions();
        var advertised = ParseAddress(options.AdvertisedIPAddress, $"{SiloOptions.SectionName}:{nameof(SiloOptions.AdvertisedIPAddress)}") ?? IPAddress.Loopback;
        var listen = ParseAddress(options.ListenAddress, $"{SiloOptions.SectionName}:{nameof(SiloOptions.ListenAddress)}") ?? advertised;
        var siloPort = options.SiloPort == 0 ? FreePort(listen) : options.SiloPort;
        silo.Configure<ClusterOptions>(cluster =>
        {
            cluster.ClusterId = options.ClusterId ?? "controlplane";
            cluster.ServiceId = options.ServiceId;
        });
        silo.Configure<EndpointOptions>(endpoints =>
        {
            endpoints.AdvertisedIPAddress = advertised;
            endpoints.SiloPort = siloPort;
            endpoints.SiloListeningEndpoint = new IPEndPoint(listen, siloPort);
            endpoints.GatewayPort = options.GatewayPort;
            endpoints.GatewayListeningEndpoint = options.GatewayPort == 0 ? null : new IPEndPoint(listen, options.GatewayPort);
        });
        silo.Configure<ClusterMembershipOptions>(configuration.GetSection($"{SiloOptions.SectionName}:Membership"));
        silo.Configure<SiloMessagingOptions>(configuration.GetSection($"{SiloOptions.SectionName}:Messaging"));
        silo.UseAdoNetClustering(clustering =>
        {
            clustering.Invariant = PostgresInvariant;
            clustering.ConnectionString = connectionString;
        });
    }

    private static IPAddress? ParseAddress(string? value, string setting) =>
        string.IsNullOrWhiteSpace(value) ? null
        : IPAddress.TryParse(value, out var address) ? address
        : throw new StartupFailedException($"{setting} must be an IP address, not '{value}'.");

    private static int FreePort(IPAddress address)
    {
        using var listener = new TcpListener(address, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
