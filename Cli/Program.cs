using ControlPlane.Cli;

using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, press) =>
{
    press.Cancel = true;
    cancel.Cancel();
};

return await CliApplication.RunAsync(args, CliEnvironment.OfProcess(), cancel.Token);
