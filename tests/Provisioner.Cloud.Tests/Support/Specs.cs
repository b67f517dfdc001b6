using System.Security.Cryptography;
using Provisioner.Deployments;

namespace Provisioner.Cloud.Tests.Support;

public static class Specs
{
    public static string NewId(string prefix) => $"{prefix}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}";

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
        Generation = generation,
    };
}
