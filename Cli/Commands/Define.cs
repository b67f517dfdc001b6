using System.CommandLine;

namespace ControlPlane.Cli.Commands;

/// <summary>Shorthand for declaring a command with its arguments and options and the body that runs it.</summary>
internal static class Define
{
    public static Command Command(string name, string description, params Command[] subcommands)
    {
        var command = new Command(name, description);
        foreach (var subcommand in subcommands)
        {
            command.Subcommands.Add(subcommand);
        }

        return command;
    }

    public static Command Command(string name, string description, CliEnvironment environment, IEnumerable<Symbol> symbols, Func<Session, Task> body)
    {
        var command = new Command(name, description);
        foreach (var symbol in symbols)
        {
            switch (symbol)
            {
                case Argument argument:
                    command.Arguments.Add(argument);
                    break;
                case Option option:
                    command.Options.Add(option);
                    break;
            }
        }

        command.Handle(environment, body);
        return command;
    }

    public static Argument<string> Id(string name, string description) => new(name) { Description = description };

    public static Option<string> Required(string name, string description) => new(name) { Description = description, Required = true };

    public static Option<string?> Optional(string name, string description) => new(name) { Description = description };

    public static Option<bool> Flag(string name, string description) => new(name) { Description = description };

    /// <summary>A fresh key per run, or the one the person gives to repeat a run safely.</summary>
    public static Option<string?> IdempotencyKey() =>
        new("--idempotency-key") { Description = "Repeat a write safely: the same key answers the first result instead of acting twice (default: a new one per run)" };

    public static string KeyOrNew(this Session session, Option<string?> option) => session.Value(option) ?? Guid.NewGuid().ToString("N");
}
