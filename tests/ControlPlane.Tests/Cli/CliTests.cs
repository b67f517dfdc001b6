using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using ControlPlane.Cli;
using ControlPlane.Tests.Support;
using Xunit.Abstractions;

namespace ControlPlane.Tests.Cli;

/// <summary>A real control plane process for the CLI's tests, started once for the class.</summary>
public sealed class CliHost : IAsyncLifetime
{
    private readonly TestDirectory _directory = new();

    public ControlPlaneProcess Host { get; private set; } = null!;

    public ControlPlaneApi Admin { get; private set; } = null!;

    public string AdminKeyFile => Path.Combine(_directory.Path, "admin-api-key");

    public async Task InitializeAsync()
    {
        Host = new ControlPlaneProcess(_directory.Path, Ports.InstanceRange());
        await Host.StartAsync();
        Admin = Host.CreateAdminApi();
    }

    public async Task DisposeAsync()
    {
        await Host.DisposeAsync();
        _directory.Dispose();
    }
}

/// <summary>
/// The <c>controlplane</c> CLI against a real control plane over HTTP: the platform admin's first owner, a customer's
/// instance from create to delete, keys, the audit log and the evidence bundle, and mistakes said in words with the
/// documented exit codes.
/// </summary>
public sealed class CliTests(CliHost fixture, ITestOutputHelper output) : IClassFixture<CliHost>, IDisposable
{
    private readonly TestDirectory _home = new();

    public void Dispose() => _home.Dispose();

    [Fact]
    public async Task Platform_admin_creates_a_tenant_with_its_first_owner_whose_link_opens_the_portal()
    {
        var created = await RunAsync(["tenants", "create", "--name", "Acme", "--plan", "team", "--owner", "first.owner@acme.test", "--api-key-file", fixture.AdminKeyFile]);

        Assert.Equal(0, created.ExitCode);
        var link = created.Stdout.Split('\n').Select(line => line.Trim()).Single(line => line.Contains("/portal/sign-in/link?token=", StringComparison.Ordinal));
        var tenantId = created.Stdout.Split('\n').Single(line => line.StartsWith("Tenant:", StringComparison.Ordinal))["Tenant:".Length..].Trim();
        Assert.Contains("first.owner@acme.test is owner", created.Stdout, StringComparison.Ordinal);

        using var browserless = new HttpClient();
        using var page = await browserless.GetAsync(link);
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);

        var members = (await fixture.Admin.GetAsync($"/api/v1/tenants/{tenantId}/members"))["items"]!.AsArray();
        var owner = Assert.Single(members)!;
        Assert.Equal("first.owner@acme.test", (string?)owner["email"]);
        Assert.Equal("owner", (string?)owner["role"]);

        // People are named by email; the tenant keeps its owner.
        var demote = await RunAsync(["members", "set-role", "first.owner@acme.test", "--role", "viewer", "-t", tenantId, "--api-key-file", fixture.AdminKeyFile]);
        Assert.Equal(CliApplication.Refused, demote.ExitCode);
        Assert.Contains("(409)", demote.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, (await RunAsync(["members", "add", "second@acme.test", "--role", "member", "-t", tenantId, "--api-key-file", fixture.AdminKeyFile])).ExitCode);
        Assert.Equal(0, (await RunAsync(["members", "remove", "second@acme.test", "-t", tenantId, "--api-key-file", fixture.AdminKeyFile])).ExitCode);
        Assert.Single((await fixture.Admin.GetAsync($"/api/v1/tenants/{tenantId}/members"))["items"]!.AsArray());
    }

    [Fact]
    public async Task Customer_runs_an_instance_from_create_to_delete_with_a_saved_login_and_the_keys_only_tenant()
    {
        var tenantId = (string)(await fixture.Admin.CreateTenantAsync("Cli Corp", "team"))["id"]!;
        var key = await RunAsync(["keys", "create", "ci", "--role", "admin", "--tenant", tenantId, "--api-key-file", fixture.AdminKeyFile, "-o", "json"]);
        Assert.Equal(0, key.ExitCode);
        var secret = (string)JsonNode.Parse(key.Stdout)!["secret"]!;

        var login = await RunAsync(["login", "--api-key-stdin"], stdin: secret + "\n");
        Assert.Equal(0, login.ExitCode);
        var profile = Path.Combine(_home.Path, "config", "controlplane", "config.json");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(profile));

        // No --tenant and no key option from here on: the saved login's key belongs to one tenant.
        var create = await RunAsync(["instances", "create", "orders-cache", "--size", "small"]);
        Assert.True(create.ExitCode == 0, create.Stderr);
        Assert.Matches(@"State:\s+Running", create.Stdout);
        Assert.Contains("succeeded", create.Stderr, StringComparison.Ordinal);

        var credentials = await RunAsync(["instances", "credentials", "orders-cache", "-o", "json"]);
        Assert.Equal(0, credentials.ExitCode);
        await using (var redis = await GarnetClient.ConnectAsync(JsonNode.Parse(credentials.Stdout)!))
        {
            Assert.True(await redis.GetDatabase().StringSetAsync("cli", "works"));
        }

        var scale = await RunAsync(["instances", "scale", "orders-cache", "--size", "medium"]);
        Assert.True(scale.ExitCode == 0, scale.Stderr);
        Assert.Matches(@"Size:\s+medium", scale.Stdout);

        var refused = await RunAsync(["instances", "delete", "orders-cache"]);
        Assert.Equal(CliApplication.Misused, refused.ExitCode);
        Assert.Contains("--yes", refused.Stderr, StringComparison.Ordinal);
        var list = await RunAsync(["instances", "list", "-o", "json"]);
        Assert.Equal("Running", (string?)Assert.Single(JsonNode.Parse(list.Stdout)!["items"]!.AsArray())!["state"]);

        var delete = await RunAsync(["instances", "delete", "orders-cache", "--yes"]);
        Assert.True(delete.ExitCode == 0, delete.Stderr);
        Assert.Matches(@"State:\s+Deleted", delete.Stdout);

        var audit = await RunAsync(["audit", "list", "--action", "instance.create", "-o", "json"]);
        Assert.Equal(0, audit.ExitCode);
        var record = Assert.Single(JsonNode.Parse(audit.Stdout)!["items"]!.AsArray())!;
        Assert.StartsWith("apikey:", (string?)record["actor"], StringComparison.Ordinal);
        Assert.Contains("controlplane-cli", (string?)record["userAgent"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Keys_are_created_once_shown_rotated_and_revoked_and_a_revoked_key_is_refused()
    {
        var tenantId = (string)(await fixture.Admin.CreateTenantAsync("Keys Corp", "team"))["id"]!;
        var created = JsonNode.Parse((await RunAsync(["keys", "create", "deploy", "--role", "viewer", "-t", tenantId, "--api-key-file", fixture.AdminKeyFile, "-o", "json"])).Stdout)!;
        var keyId = (string)created["key"]!["id"]!;

        var listed = await RunAsync(["keys", "list", "-t", tenantId, "--api-key-file", fixture.AdminKeyFile]);
        Assert.Contains(keyId, listed.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain((string)created["secret"]!, listed.Stdout, StringComparison.Ordinal);

        var rotated = await RunAsync(["keys", "rotate", keyId, "--overlap-minutes", "0", "-t", tenantId, "--api-key-file", fixture.AdminKeyFile, "-o", "json"]);
        Assert.Equal(0, rotated.ExitCode);
        var newSecret = (string)JsonNode.Parse(rotated.Stdout)!["secret"]!;
        Assert.NotEqual((string)created["secret"]!, newSecret);

        var revoked = await RunAsync(["keys", "revoke", (string)JsonNode.Parse(rotated.Stdout)!["key"]!["id"]!, "-t", tenantId, "--api-key-file", fixture.AdminKeyFile]);
        Assert.Equal(0, revoked.ExitCode);
        var refused = await RunAsync(["whoami"], environment: new() { ["CONTROLPLANE_API_KEY"] = newSecret });
        Assert.Equal(CliApplication.Refused, refused.ExitCode);
        Assert.Contains("(401)", refused.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Evidence_export_writes_an_owner_only_bundle_with_the_verified_chain()
    {
        var file = Path.Combine(_home.Path, "evidence.json");

        var export = await RunAsync(["evidence", "export", "--file", file, "--api-key-file", fixture.AdminKeyFile]);

        Assert.True(export.ExitCode == 0, export.Stderr);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        var bundle = JsonNode.Parse(await File.ReadAllTextAsync(file))!;
        Assert.True((bool?)bundle["auditChain"]!["intact"], bundle["auditChain"]!.ToJsonString());
        Assert.NotEmpty(bundle["roleAssignments"]!.AsArray());

        var again = await RunAsync(["evidence", "export", "--file", file, "--api-key-file", fixture.AdminKeyFile]);
        Assert.Equal(CliApplication.Misused, again.ExitCode);
        Assert.Contains("exists; choose another --file", again.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Mistakes_are_said_in_words_with_exit_1_for_refusals_and_2_for_the_command_line()
    {
        var tenantId = (string)(await fixture.Admin.CreateTenantAsync("Mistakes Corp", "team"))["id"]!;

        var unknown = await RunAsync(["instances", "show", "ins_nothere", "-t", tenantId, "--api-key-file", fixture.AdminKeyFile]);
        Assert.Equal(CliApplication.Refused, unknown.ExitCode);
        Assert.Contains("(404)", unknown.Stderr, StringComparison.Ordinal);

        var badSize = await RunAsync(["instances", "create", "big", "--size", "enormous", "-t", tenantId, "--api-key-file", fixture.AdminKeyFile]);
        Assert.Equal(CliApplication.Refused, badSize.ExitCode);
        Assert.Contains("enormous", badSize.Stderr, StringComparison.Ordinal);
        Assert.Empty((await fixture.Admin.GetAsync($"/api/v1/tenants/{tenantId}/instances"))["items"]!.AsArray());

        var badOption = await RunAsync(["instances", "list", "--colour", "red"]);
        Assert.Equal(CliApplication.Misused, badOption.ExitCode);
        Assert.Contains("--colour", badOption.Stderr, StringComparison.Ordinal);
        Assert.Contains("controlplane instances list --help", badOption.Stderr, StringComparison.Ordinal);

        var noKey = await RunAsync(["whoami"]);
        Assert.Equal(CliApplication.Misused, noKey.ExitCode);
        Assert.Contains("controlplane login", noKey.Stderr, StringComparison.Ordinal);

        var unreachable = await RunAsync(["whoami", "--url", $"http://127.0.0.1:{Ports.Free()}", "--api-key-file", fixture.AdminKeyFile]);
        Assert.Equal(CliApplication.Refused, unreachable.ExitCode);
        Assert.Contains("cannot reach the control plane", unreachable.Stderr, StringComparison.Ordinal);

        var profile = Path.Combine(_home.Path, "config", "controlplane", "config.json");
        Directory.CreateDirectory(Path.GetDirectoryName(profile)!);
        await File.WriteAllTextAsync(profile, "{}");
        File.SetUnixFileMode(profile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var exposed = await RunAsync(["whoami"]);
        Assert.Equal(CliApplication.Misused, exposed.ExitCode);
        Assert.Contains("chmod 600", exposed.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_built_command_runs_as_its_own_process_and_exits_with_the_apis_verdict()
    {
        var cli = Path.Combine(AppProcess.BuildOutputOf("Cli"), "ControlPlane.Cli.dll");
        var ok = await RunProcessAsync(cli, ["whoami", "--url", fixture.Host.BaseAddress.ToString(), "--api-key-file", fixture.AdminKeyFile]);
        Assert.True(ok.ExitCode == 0, ok.Stderr);
        Assert.Contains("platform-admin", ok.Stdout, StringComparison.Ordinal);

        var refused = await RunProcessAsync(cli, ["tenants", "show", "--tenant", "ten_nothere", "--url", fixture.Host.BaseAddress.ToString(), "--api-key-file", fixture.AdminKeyFile]);
        Assert.Equal(CliApplication.Refused, refused.ExitCode);
    }

    private async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(
        string[] args, string stdin = "", Dictionary<string, string?>? environment = null)
    {
        var variables = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["HOME"] = _home.Path,
            ["XDG_CONFIG_HOME"] = Path.Combine(_home.Path, "config"),
            ["CONTROLPLANE_URL"] = fixture.Host.BaseAddress.ToString(),
        };
        foreach (var (name, value) in environment ?? [])
        {
            variables[name] = value;
        }

        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exitCode = await CliApplication.RunAsync(args, new CliEnvironment(stdout, stderr, new StringReader(stdin), variables));
        output.WriteLine($"$ controlplane {string.Join(' ', args)}  → {exitCode}\n{stdout}{stderr}");
        return (exitCode, stdout.ToString(), stderr.ToString());
    }

    private async Task<(int ExitCode, string Stdout, string Stderr)> RunProcessAsync(string dll, string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(dll);
        foreach (var argument in args)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["HOME"] = _home.Path;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        output.WriteLine($"$ controlplane {string.Join(' ', args)}  → {process.ExitCode}\n{await stdout}{await stderr}");
        return (process.ExitCode, await stdout, await stderr);
    }
}
