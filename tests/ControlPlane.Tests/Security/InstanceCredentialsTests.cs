using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Billing.Sla;
using Billing.Usage;
using ControlPlane.Persistence;
using ControlPlane.Secrets;
using ControlPlane.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Provisioner.Deployments;
using Provisioner.Health;
using StackExchange.Redis;

namespace ControlPlane.Tests.Security;

/// <summary>
/// Instance credentials against real Garnet processes: sealed at rest in the SQLite file, rotated as an operation, and
/// the platform's own user out of the customer's reach.
/// </summary>
public sealed class InstanceCredentialsTests : IAsyncLifetime
{
    private static readonly TimeSpan s_commandTimeout = TimeSpan.FromSeconds(10);

    private readonly TestDirectory _dataDirectory = new();
    private ControlPlaneFactory _factory = null!;
    private ControlPlaneApi _api = null!;
    private string _tenantId = "";

    public async Task InitializeAsync()
    {
        _factory = Start(_dataDirectory);
        _api = AdminApi(_factory, _dataDirectory);
        _tenantId = (string)(await _api.CreateTenantAsync())["id"]!;
    }

    public async Task DisposeAsync()
    {
        await _factory.DisposeAsync();
        _dataDirectory.Dispose();
    }

    [Fact]
    public async Task After_a_rotation_the_new_password_works_the_old_one_is_refused_and_the_data_is_kept()
    {
        var instanceId = (string)(await _api.CreateRunningInstanceAsync(_tenantId, "rotated"))["id"]!;
        var old = await _api.GetCredentialsAsync(_tenantId, instanceId);
        await using (var connection = await GarnetClient.ConnectAsync(old))
        {
            await connection.GetDatabase().StringSetAsync("kept", "across the rotation");
        }

        using var response = await _api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{_tenantId}/instances/{instanceId}:rotateCredentials", idempotencyKey: "rotate-1");
        var accepted = await ControlPlaneApi.ExpectAsync(response, HttpStatusCode.Accepted);
        using var retried = await _api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{_tenantId}/instances/{instanceId}:rotateCredentials", idempotencyKey: "rotate-1");
        Assert.Equal((string?)accepted["id"], (string?)(await ControlPlaneApi.ExpectAsync(retried, HttpStatusCode.Accepted))["id"]);
        var operation = await _api.WaitForOperationAsync(_tenantId, (string)accepted["id"]!);
        var rotated = await _api.GetCredentialsAsync(_tenantId, instanceId);

        Assert.Equal(("rotateCredentials", "succeeded"), ((string?)operation["type"], (string?)operation["status"]));
        Assert.Equal("Running", (string?)(await _api.GetInstanceAsync(_tenantId, instanceId))["state"]);
        Assert.NotEqual((string?)old["password"], (string?)rotated["password"]);
        Assert.Equal((int)old["port"]!, (int)rotated["port"]!);
        await using (var connection = await GarnetClient.ConnectAsync(rotated))
        {
            Assert.Equal("across the rotation", (string?)await connection.GetDatabase().StringGetAsync("kept"));
        }

        await Assert.ThrowsAnyAsync<RedisException>(() => GarnetClient.ConnectAsync(old));
        var refused = await Assert.ThrowsAsync<IOException>(() => AsCustomerAsync(rotated, (string)old["password"]!, "PING"));
        Assert.Contains("WRONGPASS", refused.Message, StringComparison.Ordinal);
        Assert.Contains(await AuditActionsAsync(), action => action == "instance.credentials.rotate");
    }

    [Fact]
    public async Task The_customer_cannot_touch_the_platform_user_its_password_or_the_counters_and_the_platform_probes_still_succeed()
    {
        var instanceId = (string)(await _api.CreateRunningInstanceAsync(_tenantId, "probed"))["id"]!;
        var credentials = await _api.GetCredentialsAsync(_tenantId, instanceId);
        var password = (string)credentials["password"]!;

        string[][] attempts =
        [
            ["ACL", "SETUSER", InstanceAccess.PlatformUser, "off"],
            ["ACL", "SETUSER", InstanceAccess.PlatformUser, "resetpass", ">mine"],
            ["ACL", "SETUSER", InstanceAccess.CustomerUser, "+@admin"],
            ["ACL", "DELUSER", InstanceAccess.PlatformUser],
            ["ACL", "LOAD"],
            ["CONFIG", "SET", "requirepass", "mine"],
            ["CONFIG", "RESETSTAT"],
            ["INFO", "RESET"],
            ["CLIENT", "KILL", "USER", InstanceAccess.PlatformUser],
        ];
        foreach (var attempt in attempts)
        {
            var reply = await AsCustomerAsync(credentials, password, attempt);
            Assert.True(reply.StartsWith('-'), $"{string.Join(' ', attempt)} answered {reply}");
        }

        // What the customer may do, it still may.
        Assert.Equal("+OK", await AsCustomerAsync(credentials, password, "SET", "mine", "yes"));

        // The SLA and metering probe, as billing runs it, and the platform user's own PING and INFO.
        var minute = ProbeMinute.MinuteOf(DateTimeOffset.UtcNow);
        await _factory.Services.GetRequiredService<IGrainFactory>().GetGrain<IInstanceMeteringGrain>(instanceId).MeasureAsync();
        var probed = await _factory.Services.GetRequiredService<ProbeMinutes>().ReadAsync(instanceId, minute)
            ?? await _factory.Services.GetRequiredService<ProbeMinutes>().ReadAsync(instanceId, minute + 1);
        Assert.NotNull(probed);
        Assert.True(probed.Probes > 0 && probed.Failed == 0, $"{probed.Failed} of {probed.Probes} SLA probes failed");
        var platformPassword = await PlatformPasswordAsync(instanceId);
        var ping = await RespPingProbe.PingAsync(
            (string)credentials["host"]!, (int)credentials["port"]!, InstanceAccess.PlatformUser, platformPassword, s_commandTimeout, ["stats"], CancellationToken.None);
        Assert.True(ping.Answered, ping.Detail);
        Assert.Contains("total_write_commands_processed", ping.Info, StringComparison.Ordinal);

        // The customer's password is not the platform's, and the platform's user can do nothing with data.
        Assert.NotEqual(password, platformPassword);
        Assert.StartsWith("-WRONGPASS", await AsCustomerAsync(credentials, password, "AUTH", InstanceAccess.PlatformUser, password), StringComparison.Ordinal);
        Assert.StartsWith("-NOPERM", await RespPingProbe.RunAsync(
            (string)credentials["host"]!, (int)credentials["port"]!, InstanceAccess.PlatformUser, platformPassword, ["GET", "mine"], s_commandTimeout, CancellationToken.None), StringComparison.Ordinal);
    }

    [Fact]
    public async Task No_password_reaches_the_database_file_in_plaintext()
    {
        var instanceId = (string)(await _api.CreateRunningInstanceAsync(_tenantId, "sealed"))["id"]!;
        var first = (string)(await _api.GetCredentialsAsync(_tenantId, instanceId))["password"]!;
        var rotation = await ControlPlaneApi.ExpectAsync(
            await _api.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{_tenantId}/instances/{instanceId}:rotateCredentials"), HttpStatusCode.Accepted);
        await _api.WaitForOperationAsync(_tenantId, (string)rotation["id"]!);
        var second = (string)(await _api.GetCredentialsAsync(_tenantId, instanceId))["password"]!;
        var platform = await PlatformPasswordAsync(instanceId);

        await _factory.DisposeAsync();
        var stored = await DatabaseBytesAsync(_dataDirectory);

        Assert.Contains("env1.", stored, StringComparison.Ordinal);
        foreach (var password in new[] { first, second, platform })
        {
            Assert.DoesNotContain(password, stored, StringComparison.Ordinal);
        }

        _factory = Start(_dataDirectory);
    }

    [Fact]
    public async Task A_password_stored_in_plaintext_before_encryption_is_sealed_on_read_and_still_opens_the_instance_with_its_data()
    {
        var instanceId = (string)(await _api.CreateRunningInstanceAsync(_tenantId, "legacy"))["id"]!;
        await using (var connection = await GarnetClient.ConnectAsync(await _api.GetCredentialsAsync(_tenantId, instanceId)))
        {
            await connection.GetDatabase().StringSetAsync("kept", "since before encryption");
        }

        await _factory.DisposeAsync();
        // The instance's state as a control plane before envelope encryption stored it: the password in plaintext.
        var legacyPassword = "legacy-" + Guid.NewGuid().ToString("N");
        var database = Database.Sqlite(Path.Combine(_dataDirectory.Path, "controlplane.db"));
        var (grainId, payload) = (await database.QueryAsync(
            "SELECT grain_id, payload FROM grain_state WHERE state_name = 'instance' AND grain_id LIKE @id;",
            row => (row.GetString(0), row.GetString(1)),
            CancellationToken.None,
            ("id", "%" + instanceId))).Single();
        var legacy = JsonNode.Parse(payload)!.AsObject();
        legacy.Remove("SealedPassword");
        legacy.Remove("SealedPlatformPassword");
        legacy["Password"] = legacyPassword;
        await database.ExecuteAsync(
            "UPDATE grain_state SET payload = @payload WHERE state_name = 'instance' AND grain_id = @id;",
            CancellationToken.None,
            ("payload", legacy.ToJsonString()),
            ("id", grainId));
        // As an old database would be: its rows checkpointed into the file, not only in the write-ahead log.
        await database.ExecuteAsync("PRAGMA wal_checkpoint(TRUNCATE);", CancellationToken.None);
        Assert.Contains(legacyPassword, await DatabaseBytesAsync(_dataDirectory), StringComparison.Ordinal);

        _factory = Start(_dataDirectory);
        _api = AdminApi(_factory, _dataDirectory);
        var credentials = await _api.GetCredentialsAsync(_tenantId, instanceId);
        Assert.Equal(legacyPassword, (string?)credentials["password"]);
        await _api.WaitForInstanceAsync(_tenantId, instanceId, instance => (string?)instance["health"] is "healthy" or "degraded", TimeSpan.FromSeconds(90));
        Assert.Equal("since before encryption", await GarnetClient.GetWhenServingAsync(credentials, "kept", TimeSpan.FromSeconds(30)));

        await _factory.DisposeAsync();
        Assert.DoesNotContain(legacyPassword, await DatabaseBytesAsync(_dataDirectory), StringComparison.Ordinal);
        _factory = Start(_dataDirectory);
    }

    private static ControlPlaneFactory Start(TestDirectory dataDirectory)
    {
        var factory = new ControlPlaneFactory();
        factory.Settings["ControlPlane:DataDir"] = dataDirectory.Path;
        return factory;
    }

    private static ControlPlaneApi AdminApi(ControlPlaneFactory factory, TestDirectory dataDirectory) =>
        ControlPlaneApi.WithKey(factory.CreateClient(), File.ReadAllText(Path.Combine(dataDirectory.Path, "admin-api-key")).Trim());

    /// <summary>
    /// The SQLite file and its write-ahead log, as bytes read as text: what someone who copies them sees. Checkpointed first,
    /// as SQLite does by itself as the log grows: a page replaced in the log is replaced in the file only then.
    /// </summary>
    private static async Task<string> DatabaseBytesAsync(TestDirectory dataDirectory)
    {
        await Database.Sqlite(Path.Combine(dataDirectory.Path, "controlplane.db")).ExecuteAsync("PRAGMA wal_checkpoint(TRUNCATE);", CancellationToken.None);
        var text = new StringBuilder();
        foreach (var file in new[] { "controlplane.db", "controlplane.db-wal" }.Select(name => Path.Combine(dataDirectory.Path, name)).Where(File.Exists))
        {
            text.Append(Encoding.Latin1.GetString(await File.ReadAllBytesAsync(file)));
        }

        return text.ToString();
    }

    /// <summary>The platform's password for the instance, opened from its stored state as the control plane does.</summary>
    private Task<string> PlatformPasswordAsync(string instanceId) => PlatformCredentials.PasswordAsync(_factory.Services, instanceId);

    private async Task<List<string>> AuditActionsAsync() =>
        [.. (await _api.ListAllAsync($"/api/v1/tenants/{_tenantId}/audit")).Select(record => (string)record["action"]!)];

    private static Task<string> AsCustomerAsync(JsonNode credentials, string password, params string[] command) =>
        RespPingProbe.RunAsync((string)credentials["host"]!, (int)credentials["port"]!, InstanceAccess.CustomerUser, password, command, s_commandTimeout, CancellationToken.None);
}
