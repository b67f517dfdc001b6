using ControlPlane.Auditing;
using ControlPlane.Persistence;

namespace ControlPlane.Security;

/// <summary>
/// On first start, creates the platform-admin API key and writes it to <c>&lt;dataDir&gt;/admin-api-key</c>
/// (mode 0600). Logs where the key is, never the key. If the file is gone but a key exists, the old key
/// is revoked and a new one written: whoever can write the data directory owns the control plane anyway.
/// </summary>
public sealed partial class AdminApiKeyBootstrapper(
    ControlPlaneDatabase database,
    ApiKeyStore keys,
    AuditLog audit,
    ILogger<AdminApiKeyBootstrapper> logger) : IHostedService
{
    public const string FileName = "admin-api-key";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var path = Path.Combine(database.DataDirectory, FileName);
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

        var (key, secret) = await keys.CreateAsync("bootstrap platform admin", Roles.PlatformAdmin, tenantId: null, cancellationToken);
        var temporary = path + ".tmp";
        await using (var file = new FileStream(temporary, new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        {
            await file.WriteAsync(System.Text.Encoding.UTF8.GetBytes(secret + "\n"), cancellationToken);
            await file.FlushAsync(cancellationToken);
        }

        File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(temporary, path, overwrite: true);
        await audit.RecordAsync(new AuditEntry("system", null, "api-key.create", key.Id, "succeeded", "Bootstrap platform-admin key"), cancellationToken);
        LogKeyCreated(path);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Information, Message = "Platform admin API key created and written to {Path}")]
    private partial void LogKeyCreated(string path);

    [LoggerMessage(Level = LogLevel.Information, Message = "Platform admin API key is in {Path}")]
    private partial void LogKeyLocation(string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Path} is missing: revoked the old platform admin key and wrote a new one")]
    private partial void LogKeyFileMissing(string path);
}
