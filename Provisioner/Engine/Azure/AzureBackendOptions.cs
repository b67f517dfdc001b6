using System.Net;
using Microsoft.Extensions.Options;
using Provisioner.CloudApis;

namespace Provisioner.Azure;

/// <summary>How the Azure backend places instances as Container Apps (section <c>Provisioner:Azure</c>).</summary>
public sealed class AzureBackendOptions
{
    public const string SectionName = "Provisioner:Azure";

    /// <summary>Registers the backend (name <c>azure</c>); off by default.</summary>
    public bool Enabled { get; set; }

    public string SubscriptionId { get; set; } = "";

    /// <summary>The region of tenants' resource groups and instances (the environment's region).</summary>
    public string Location { get; set; } = "";

    /// <summary>The Container Apps environment instances run in: <c>/subscriptions/…/providers/Microsoft.App/managedEnvironments/NAME</c>.</summary>
    public string ManagedEnvironmentId { get; set; } = "";

    /// <summary>The environment's Azure Files storage (Bicep's <c>instances</c>) that holds every instance's data, each in its own folder.</summary>
    public string StorageName { get; set; } = "instances";

    /// <summary>Each tenant gets the resource group <c>&lt;prefix&gt;&lt;tenant id&gt;</c>, tagged with the tenant id.</summary>
    public string ResourceGroupPrefix { get; set; } = "tenant-";

    /// <summary>Azure Resource Manager; another cloud's (or a test's) endpoint and token audience may be given.</summary>
    public string ResourceManagerEndpoint { get; set; } = "https://management.azure.com";

    public string Audience { get; set; } = "https://management.azure.com";

    /// <summary>
    /// A PEM certificate to trust as the root of <see cref="ResourceManagerEndpoint"/>'s TLS certificate, for a Resource
    /// Manager behind a private certificate authority (Azure Stack Hub, a test's); empty trusts the system's roots only.
    /// </summary>
    public string? TrustedRootCertificateFile { get; set; }

    /// <summary>The client id of the user-assigned managed identity the provisioner runs as (Bicep's output).</summary>
    public string? ManagedIdentityClientId { get; set; }

    public string ContainerAppsApiVersion { get; set; } = "2024-03-01";

    /// <summary>Whether instances' TCP ingress is reachable from outside the environment.</summary>
    public bool ExternalIngress { get; set; } = true;

    /// <summary>Address ranges allowed to connect to instances; empty allows any.</summary>
    public List<string> AllowedCidrs { get; set; } = [];

    /// <summary>How often a wait looks again (an operation's status, a revision coming up).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);

    public TimeSpan DeleteTimeout { get; set; } = TimeSpan.FromMinutes(10);

    public RetryAfterOptions Http { get; set; } = new();
}

public sealed class AzureBackendOptionsValidator : IValidateOptions<AzureBackendOptions>
{
    public ValidateOptionsResult Validate(string? name, AzureBackendOptions options)
    {
        if (!options.Enabled)
        {
            return ValidateOptionsResult.Success;
        }

        const string prefix = AzureBackendOptions.SectionName;
        var failures = new List<string>();
        if (!Guid.TryParse(options.SubscriptionId, out _))
        {
            failures.Add($"{prefix}:SubscriptionId must be the subscription's id (a GUID) that holds tenants' resource groups.");
        }

        if (string.IsNullOrWhiteSpace(options.Location))
        {
            failures.Add($"{prefix}:Location is required: the region of the Container Apps environment (e.g. westeurope).");
        }

        if (!options.ManagedEnvironmentId.Contains("/providers/Microsoft.App/managedEnvironments/", StringComparison.OrdinalIgnoreCase))
        {
            failures.Add($"{prefix}:ManagedEnvironmentId must be the resource id of the Container Apps environment (the Bicep deployment's output managedEnvironmentId).");
        }

        if (string.IsNullOrWhiteSpace(options.StorageName))
        {
            failures.Add($"{prefix}:StorageName is required: the environment's Azure Files storage for instances' data.");
        }

        if (!Uri.TryCreate(options.ResourceManagerEndpoint, UriKind.Absolute, out _) || !Uri.TryCreate(options.Audience, UriKind.Absolute, out _))
        {
            failures.Add($"{prefix}:ResourceManagerEndpoint and {prefix}:Audience must be absolute URLs.");
        }

        if (!string.IsNullOrEmpty(options.TrustedRootCertificateFile) && !File.Exists(options.TrustedRootCertificateFile))
        {
            failures.Add($"{prefix}:TrustedRootCertificateFile '{options.TrustedRootCertificateFile}' does not exist.");
        }

        if (options.ResourceGroupPrefix.Length is 0 or > 40)
        {
            failures.Add($"{prefix}:ResourceGroupPrefix must be 1 to 40 characters.");
        }

        failures.AddRange(options.AllowedCidrs
            .Where(cidr => !IPNetwork.TryParse(cidr, out _))
            .Select(cidr => $"{prefix}:AllowedCidrs: '{cidr}' is not an address range (e.g. 203.0.113.0/24)."));
        if (options.PollInterval <= TimeSpan.Zero || options.DeleteTimeout <= TimeSpan.Zero)
        {
            failures.Add($"{prefix}:PollInterval and {prefix}:DeleteTimeout must be positive.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
