using Garnet;

// One hosted Garnet instance. The control plane passes every option on the command line except the
// password, which arrives in GARNET_PASSWORD so it never shows in `ps` or /proc/<pid>/cmdline.
var password = Environment.GetEnvironmentVariable("GARNET_PASSWORD");
Environment.SetEnvironmentVariable("GARNET_PASSWORD", null);
var garnetArgs = string.IsNullOrEmpty(password) ? args : [.. args, "--password", password];

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
