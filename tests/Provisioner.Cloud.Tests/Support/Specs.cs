using System.Security.Cryptography;
using Provisioner.Deployments;

namespace Provisioner.Cloud.Tests.Support;

public static class Specs
{
    public static string NewId(string prefix) => $"{prefix}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}";

    /// <summary>The platform's own password in every spec built here.</summary>
    public const string PlatformPassword = "platform-password-for-tests";

    public static DeploymentSpec Garnet(string backend, string tenantId, string instanceId, string password, string size = "small", long generation = 1) => new()
    {
        InstanceId = instanceId,
        TenantId = tenantId,
        Backend = backend,
        Product = "garnet",
        Version = "2.2.8",
        Size = size,
        Goal = DeploymentGoal.Running,
        Password = Secret.Of(password),
        PlatformPassword = Secret.Of(PlatformPassword),
        Generation = generation,
    };
}
