using System.CommandLine;
using System.Net.Sockets;
using ControlPlane.Cli.Commands;

namespace ControlPlane.Cli;

/// <summary>
/// <c>controlplane</c>: the control plane's API from a terminal, for customers (instances, team, keys, audit) and for the
/// platform's own people (tenants and their first owner, platform members and keys, evidence). Exit codes: 0 done,
/// 1 the API refused or could not be reached (its problem is printed), 2 the command line is wrong, 130 interrupted
/// (Ctrl+C).
/// </summary>
public static class CliApplication
{
    public const int Refused = 1;
    public const int Misused = 2;
    public const int Interrupted = 130;

    public static async Task<int> RunAsync(string[] args, CliEnvironment environment, CancellationToken cancellationToken = default)
    {
        var root = Build(environment);
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0 && parsed.Action is not System.CommandLine.Help.HelpAction)
        {
            foreach (var error in parsed.Errors)
            {
                await environment.Stderr.WriteLineAsync($"error: {error.Message}");
            }

            await environment.Stderr.WriteLineAsync($"See: {string.Join(' ', ["controlplane", .. CommandPath(parsed), "--help"])}");
            return Misused;
        }

        return await parsed.InvokeAsync(new InvocationConfiguration { Output = environment.Stdout, Error = environment.Stderr }, cancellationToken);
    }

    internal static RootCommand Build(CliEnvironment environment)
    {
        var root = new RootCommand("Create and operate hosted instances, their team, keys and audit log, through the control plane's API.");
        foreach (var option in GlobalOptions.All)
        {
            root.Options.Add(option);
        }

        foreach (var command in new[]
        {
            AccountCommands.Login(environment), AccountCommands.Logout(environment), AccountCommands.WhoAmI(environment), AccountCommands.Catalog(environment),
            TenantCommands.Build(environment), InstanceCommands.Build(environment), OperationCommands.Build(environment),
            TeamCommands.Members(environment), TeamCommands.Keys(environment), TeamCommands.Platform(environment),
            UsageCommands.Usage(environment), UsageCommands.Sla(environment),
            AuditCommands.Audit(environment), AuditCommands.Evidence(environment),
        })
        {
            root.Subcommands.Add(command);
        }

        return root;
    }

    private static Stack<string> CommandPath(ParseResult parsed)
    {
        var names = new Stack<string>();
        for (var result = parsed.CommandResult; result?.Parent is System.CommandLine.Parsing.CommandResult parent; result = parent)
        {
            names.Push(result.Command.Name);
        }

        return names;
    }

    /// <summary>
    /// Runs a command's body with a <see cref="Session"/>, and says what went wrong in one place: the API's problem, an
    /// unreachable control plane, or a mistake the person can fix.
    /// </summary>
    internal static void Handle(this Command command, CliEnvironment environment, Func<Session, Task> body) =>
        command.SetAction(async (parsed, cancellationToken) =>
        {
            var output = new Output(environment.Stdout, environment.Stderr, parsed.GetValue(GlobalOptions.Output));
            Session? session = null;
            try
            {
                session = Session.Open(parsed, environment, output, cancellationToken);
                await body(session);
                return 0;
            }
            catch (ApiProblemException problem)
            {
                await output.Error.WriteLineAsync($"error: {problem.Title} ({problem.Status})");
                if (problem.Detail is { } detail)
                {
                    await output.Error.WriteLineAsync($"  {detail}");
                }

                foreach (var field in problem.FieldErrors)
                {
                    await output.Error.WriteLineAsync($"  {field}");
                }

                return Refused;
            }
            catch (HttpRequestException unreachable) when (unreachable.InnerException is SocketException || unreachable.HttpRequestError == HttpRequestError.ConnectionError)
            {
                await output.Error.WriteLineAsync(
                    $"error: cannot reach the control plane at {session?.Url}: {unreachable.Message}. Is it running? Point at it with --url or CONTROLPLANE_URL.");
                return Refused;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                await output.Error.WriteLineAsync("Stopped. An operation the API already accepted goes on; see: controlplane operations show <id>");
                return Interrupted;
            }
            catch (TaskCanceledException timedOut) when (timedOut.InnerException is TimeoutException)
            {
                await output.Error.WriteLineAsync($"error: the control plane at {session?.Url} did not answer in time. A write may still have happened: look (e.g. controlplane instances list) before repeating it.");
                return Refused;
            }
            catch (OperationFailedException failed)
            {
                await output.Error.WriteLineAsync($"error: {failed.Message}");
                return Refused;
            }
            catch (CliException mistake)
            {
                await output.Error.WriteLineAsync($"error: {mistake.Message}");
                return Misused;
            }
            finally
            {
                session?.Dispose();
            }
        });
}

/// <summary>What the CLI reads from and writes to: the process's own in <c>Program</c>, captured ones in tests.</summary>
public sealed record CliEnvironment(TextWriter Stdout, TextWriter Stderr, TextReader Stdin, IReadOnlyDictionary<string, string?> Variables)
{
    public static CliEnvironment OfProcess() =>
        new(Console.Out, Console.Error, Console.In, Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .ToDictionary(entry => (string)entry.Key, entry => (string?)entry.Value, StringComparer.Ordinal));
}
