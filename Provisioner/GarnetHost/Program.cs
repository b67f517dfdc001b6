using Garnet;

// One hosted Garnet instance. The control plane passes every option on the command line except the
// password, which arrives in GARNET_PASSWORD so it never shows in `ps` or /proc/<pid>/cmdline.
var password = Environment.GetEnvironmentVariable("GARNET_PASSWORD");
Environment.SetEnvironmentVariable("GARNET_PASSWORD", null);
var garnetArgs = string.IsNullOrEmpty(password) ? args : [.. args, "--password", password];
WriteAccessControlFile(garnetArgs);

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

// As the container image's command does (catalog Container:Command): an access control file handed over in GARNET_ACL
// is written, owner-only, where --acl-file points. This is how the cloud backends' test worlds run this host as the image.
static void WriteAccessControlFile(string[] arguments)
{
    var content = Environment.GetEnvironmentVariable("GARNET_ACL");
    Environment.SetEnvironmentVariable("GARNET_ACL", null);
    var at = Array.IndexOf(arguments, "--acl-file");
    if (string.IsNullOrEmpty(content) || at < 0 || at + 1 >= arguments.Length)
    {
        return;
    }

    File.Delete(arguments[at + 1]);
    using var file = new FileStream(arguments[at + 1], new FileStreamOptions
    {
        Mode = FileMode.CreateNew,
        Access = FileAccess.Write,
        UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
    });
    file.Write(System.Text.Encoding.UTF8.GetBytes(content));
}
