using System.Runtime.Versioning;
using Provisioner.Deployments;
using Provisioner.Health;

namespace Provisioner.Local;

/// <summary>
/// The Local backend's part of <see cref="InstanceAccess"/>: the instance's access control file (<c>users.acl</c> beside its
/// data, mode 0600, password hashes only), written before every start and whenever the spec's passwords change. A running
/// process takes a new customer password by reloading the file as the platform's user; one whose platform password
/// changed (or that was launched before access control lists) is restarted instead.
/// </summary>
[SupportedOSPlatform("linux")]
internal static class LocalAccessControl
{
    /// <summary>The file holds what <paramref name="desired"/> asks for.</summary>
    public static bool IsCurrent(LocalInstancePaths paths, DeploymentSpec desired) => Read(paths) == InstanceAccess.AccessControlFile(desired);

    /// <summary>The running process can take <paramref name="desired"/>'s file by a reload: its platform user is unchanged.</summary>
    public static bool CanReload(LocalInstancePaths paths, DeploymentSpec desired) =>
        Read(paths) is { } current && InstanceAccess.SamePlatformUser(current, InstanceAccess.AccessControlFile(desired));

    /// <summary>Replaces the file atomically, created 0600 and exclusively (a file or link left at the temporary name is removed first).</summary>
    public static void Write(LocalInstancePaths paths, DeploymentSpec desired)
    {
        var temporary = paths.AccessControl + ".tmp";
        File.Delete(temporary);
        using (var stream = new FileStream(temporary, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        {
            stream.Write(System.Text.Encoding.UTF8.GetBytes(InstanceAccess.AccessControlFile(desired)));
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, paths.AccessControl, overwrite: true);
    }

    /// <summary>Makes the running process read the file again (<c>ACL LOAD</c> as the platform's user).</summary>
    public static async Task ReloadAsync(
        string host, int port, DeploymentSpec desired, TimeSpan timeout, CancellationToken cancellationToken, string? tlsAuthorityPem = null)
    {
        string reply;
        try
        {
            reply = await RespPingProbe.RunAsync(
                host, port, InstanceAccess.PlatformUser, desired.PlatformPassword.Value, ["ACL", "LOAD"], timeout, cancellationToken, tlsAuthorityPem);
        }
        catch (Exception exception) when (exception is IOException or System.Net.Sockets.SocketException
            || (exception is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw new TransientDeploymentException($"Could not reload the credentials of instance {desired.InstanceId} on {host}:{port}: {exception.Message}", exception);
        }

        if (reply != "+OK")
        {
            throw new DeploymentFailedException("credentials-not-applied", $"Instance {desired.InstanceId} refused to reload its credentials: {reply}");
        }
    }

    private static string? Read(LocalInstancePaths paths)
    {
        try
        {
            return File.ReadAllText(paths.AccessControl);
        }
        catch (Exception exception) when (exception is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }
}
