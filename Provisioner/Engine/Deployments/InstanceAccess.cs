using System.Security.Cryptography;
using System.Text;

namespace Provisioner.Deployments;

/// <summary>
/// Who may connect to a hosted instance, as Garnet's access control list (<c>--auth Acl --acl-file</c>), the same for every
/// backend. The customer's user is <c>default</c> (a Redis client needs only the password) and holds every command but the
/// administrative ones and <c>INFO</c> (whose <c>INFO RESET</c> would zero the counters billing reads), so it can neither
/// change a password nor touch the platform's user. The platform's user may only authenticate, PING, read INFO and
/// reload this list (how a rotated password takes effect without a restart).
/// </summary>
/// <remarks>
/// Passwords are written as their SHA-256 (<c>#hex</c>), so the file, and the Kubernetes or Azure secret that carries it,
/// never holds one in plaintext. Checked against Garnet 2.2.8: the customer gets NOPERM on ACL SETUSER/DELUSER,
/// CONFIG SET and INFO; CONFIG RESETSTAT does not exist there.
/// </remarks>
public static class InstanceAccess
{
    public const string CustomerUser = "default";
    public const string PlatformUser = "platform";

    public const string CustomerRules = "~* +@all -@admin -info";
    public const string PlatformRules = "+ping +info +auth +acl|load";

    /// <summary>The access control file for <paramref name="spec"/>'s passwords.</summary>
    public static string AccessControlFile(DeploymentSpec spec) =>
        $"user {CustomerUser} on #{Hash(spec.Password)} {CustomerRules}\n" +
        $"user {PlatformUser} on #{Hash(spec.PlatformPassword)} {PlatformRules}\n";

    /// <summary>
    /// A short digest of the file for <paramref name="spec"/>, bound to the instance: a cloud backend puts it on what it
    /// deploys, so new credentials roll the container. Of hashes, so it reveals no password.
    /// </summary>
    public static string Digest(DeploymentSpec spec) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{spec.InstanceId}\n{AccessControlFile(spec)}")))[..16];

    /// <summary>Whether two access control files give the platform's user the same password (then a reload, not a restart, applies the other).</summary>
    public static bool SamePlatformUser(string file, string other) => PlatformLine(file) is { } line && line == PlatformLine(other);

    private static string? PlatformLine(string file) =>
        file.Split('\n').FirstOrDefault(line => line.StartsWith($"user {PlatformUser} ", StringComparison.Ordinal));

    private static string Hash(Secret password) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(password.Value)));
}
