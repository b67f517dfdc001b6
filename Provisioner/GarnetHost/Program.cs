using System.Text.Json;
using Garnet;

// One hosted Garnet instance. The control plane passes every option on the command line except secrets:
// - the Local backend runs it with an access control list it wrote (--auth Acl --acl-file, password hashes only), and
//   with GARNET_SECRETS=stdin writes any secrets to standard input as one JSON object, then closes it, so they show
//   neither in `ps` nor in /proc/<pid>/environ;
// - a container gets its access list in GARNET_ACL (written where --acl-file points, as the image's command does) or a
//   password in GARNET_PASSWORD, from its secret.
var secrets = Environment.GetEnvironmentVariable("GARNET_SECRETS") == "stdin" ? ReadSecrets() : [];
var password = secrets.GetValueOrDefault("password") ?? Environment.GetEnvironmentVariable("GARNET_PASSWORD");
Environment.SetEnvironmentVariable("GARNET_PASSWORD", null);
var garnetArgs = string.IsNullOrEmpty(password) ? args : [.. args, "--password", password];
var accessList = WriteAccessControlFile(garnetArgs);
if (string.IsNullOrEmpty(password) && accessList is null)
{
    // Garnet with --auth Password and no password would let anyone in: refuse instead.
    Console.Error.WriteLine("Neither an access control file (--acl-file) nor a password (GARNET_SECRETS=stdin with a \"password\", or GARNET_PASSWORD) was given: not starting without one.");
    return 2;
}

using var server = new GarnetServer(garnetArgs);
server.Start();

using var stopping = new ManualResetEventSlim();
using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
    System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
    {
        context.Cancel = true;
        stopping.Set();
    });
stopping.Wait();
return 0;

static Dictionary<string, string> ReadSecrets()
{
    using var input = Console.OpenStandardInput();
    return JsonSerializer.Deserialize<Dictionary<string, string>>(input) ?? [];
}

// The access control file --acl-file names: written owner-only from GARNET_ACL when one was handed over (the cloud
// backends' test worlds run this host as the image); else the one the Local backend wrote. Null without --acl-file.
static string? WriteAccessControlFile(string[] arguments)
{
    var content = Environment.GetEnvironmentVariable("GARNET_ACL");
    Environment.SetEnvironmentVariable("GARNET_ACL", null);
    var at = Array.IndexOf(arguments, "--acl-file");
    if (at < 0 || at + 1 >= arguments.Length)
    {
        return null;
    }

    if (!string.IsNullOrEmpty(content))
    {
        File.Delete(arguments[at + 1]);
        using var file = new FileStream(arguments[at + 1], new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        file.Write(System.Text.Encoding.UTF8.GetBytes(content));
    }

    return arguments[at + 1];
}
