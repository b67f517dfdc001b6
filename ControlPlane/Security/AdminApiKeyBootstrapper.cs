using ControlPlane.Auditing;
using ControlPlane.Hosting;
using ControlPlane.Persistence;

namespace ControlPlane.Security;

/// <summary>
/// On first start, creates the platform-admin API key and writes it to <c>&lt;dataDir&gt;/admin-api-key</c>
/// (mode 0600). Logs where the key is, never the key. Embedded, if the file is gone but a key exists, the old key
/// is revoked and a new one written: whoever can write the data directory owns the control plane anyway.
/// In cluster mode the silos share the keys and each has its own data directory: the first silo to start creates the
/// one key and writes it to its own directory; the others find it exists and leave it alone.
/// </summary>
public sealed partial class AdminApiKeyBootstrapper(
    Database database,
    DataDirectory dataDirectory,
    ApiKeyStore keys,
    AuditLog audit,
    ILogger<AdminApiKeyBootstrapper> logger) : IHostedService
{
    public const string FileName = "admin-api-key";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var path = dataDirectory.File(FileName);
        if (database.IsShared)
        {
            await CreateFirstSharedKeyAsync(path, cancellationToken);
            return;
        }

        var existing = await keys.CountActiveAsync(Roles.PlatformAdmin, cancellationToken);
        if (existing > 0 && File.Exists(path))
        {
            LogKeyLocation(path);
            return;
        }

        if (existing > 0)
        {
            await keys.RevokeAllAsync(Roles.PlatformAdmin, cancellationToken);
            LogKeyFileMissing(path);
        }

        var (key, secret) = await keys.CreateAsync("bootstrap platform admin", Roles.PlatformAdmin, tenantId: null, createdBy: "system", cancellationToken: cancellationToken);
        await WriteKeyFileAsync(path, secret, cancellationToken);
        await audit.RecordAsync(new AuditEntry("system", null, "api-key.create", key.Id, "succeeded", "Bootstrap platform-admin key"), cancellationToken);
        LogKeyCreated(path);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task CreateFirstSharedKeyAsync(string path, CancellationToken cancellationToken)
    {
        var key = await keys.CreateFirstAsync(
            "bootstrap platform admin",
            Roles.PlatformAdmin,
            (secret, token) => WriteKeyFileAsync(path, secret, token),
            cancellationToken);
        if (key is null)
        {
            LogSharedKeyExists(File.Exists(path) ? path : "the data directory of the silo that created it");
            return;
        }

        await audit.RecordAsync(new AuditEntry("system", null, "api-key.create", key.Id, "succeeded", "Bootstrap platform-admin key (cluster)"), cancellationToken);
        LogKeyCreated(path);
    }

    private static Task WriteKeyFileAsync(string path, string secret, CancellationToken cancellationToken) =>
        PrivateFile.WriteAsync(path, secret, cancellationToken);

    [LoggerMessage(Level = LogLevel.Information, Message = "Platform admin API key created and written to {Path}")]
    private partial void LogKeyCreated(string path);

    [LoggerMessage(Level = LogLevel.Information, Message = "Platform admin API key is in {Path}")]
    private partial void LogKeyLocation(string path);

    [LoggerMessage(Level = LogLevel.Information, Message = "The cluster's platform admin API key exists; it is in {Path}")]
    private partial void LogSharedKeyExists(string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Path} is missing: revoked the old platform admin key and wrote a new one")]
    private partial void LogKeyFileMissing(string path);
}
