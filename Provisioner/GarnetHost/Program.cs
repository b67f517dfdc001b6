using System.Text.Json;
using Garnet;

// One hosted Garnet instance. The control plane passes every option on the command line except secrets. The Local
// backend (GARNET_SECRETS=stdin) writes them to standard input as one JSON object and closes it, so they show neither
// in `ps` nor in /proc/<pid>/environ; a container gets its password in GARNET_PASSWORD from its secret.
var password = Environment.GetEnvironmentVariable("GARNET_SECRETS") == "stdin"
    ? ReadSecrets().GetValueOrDefault("password")
    : Environment.GetEnvironmentVariable("GARNET_PASSWORD");
Environment.SetEnvironmentVariable("GARNET_PASSWORD", null);
if (string.IsNullOrEmpty(password))
{
    // Garnet with --auth Password and no password would let anyone in: refuse instead.
    Console.Error.WriteLine("No password was given (GARNET_SECRETS=stdin with a \"password\", or GARNET_PASSWORD): not starting without one.");
    return 2;
}

using var server = new GarnetServer([.. args, "--password", password]);
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
