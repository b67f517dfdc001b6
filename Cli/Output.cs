using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace ControlPlane.Cli;

/// <summary>How an answer is shown: columns for people (the default), or the API's own JSON for programs (<c>--output json</c>).</summary>
public enum OutputFormat
{
    Table,
    Json,
}

/// <summary>Where a command writes: results to standard output, progress and errors to standard error.</summary>
public sealed class Output(TextWriter stdout, TextWriter stderr, OutputFormat format)
{
    private readonly IAnsiConsole _console = AnsiConsole.Create(new AnsiConsoleSettings
    {
        Ansi = AnsiSupport.No,
        ColorSystem = ColorSystemSupport.NoColors,
        Interactive = InteractionSupport.No,
        Out = new AnsiConsoleOutput(stdout),
    });

    public OutputFormat Format { get; } = format;

    public TextWriter Error { get; } = stderr;

    /// <summary>A list: a row per item with <paramref name="columns"/>, or the items as JSON.</summary>
    public void List(JsonNode? answer, IReadOnlyList<(string Header, Func<JsonNode, string?> Value)> columns, string itemsProperty = "items")
    {
        var items = (answer?[itemsProperty] as JsonArray ?? answer as JsonArray ?? []).OfType<JsonNode>().ToList();
        if (Format == OutputFormat.Json)
        {
            Json(answer);
            return;
        }

        if (items.Count == 0)
        {
            Error.WriteLine("(none)");
            return;
        }

        var table = new Table { Border = TableBorder.None, ShowHeaders = true };
        foreach (var (header, _) in columns)
        {
            table.AddColumn(new TableColumn(new Text(header.ToUpperInvariant())) { Padding = new Padding(0, 0, 3, 0), NoWrap = true });
        }

        foreach (var item in items)
        {
            table.AddRow(columns.Select(column => (IRenderable)new Text(column.Value(item) ?? "-")).ToArray());
        }

        Render(table);
        if ((string?)answer?["nextPageToken"] is { } next)
        {
            Error.WriteLine($"More: add --page-token {next}");
        }
    }

    /// <summary>One thing: a "name: value" line per field, or the thing as JSON.</summary>
    public void Item(JsonNode? answer, IReadOnlyList<(string Label, Func<JsonNode, string?> Value)> fields)
    {
        if (Format == OutputFormat.Json || answer is null)
        {
            Json(answer);
            return;
        }

        var grid = new Grid().AddColumn(new GridColumn { NoWrap = true, Padding = new Padding(0, 0, 2, 0) }).AddColumn();
        foreach (var (label, value) in fields)
        {
            if (value(answer) is { } text)
            {
                grid.AddRow(new Text(label + ":"), new Text(text));
            }
        }

        Render(grid);
    }

    public void Json(JsonNode? answer) => stdout.WriteLine(answer?.ToJsonString(JsonOptions.Indented) ?? "null");

    /// <summary>A sentence for people; in JSON mode it goes to standard error, so standard output stays parseable.</summary>
    public void Say(string message) => (Format == OutputFormat.Json ? Error : stdout).WriteLine(message);

    public void Progress(string message) => Error.WriteLine(message);

    private void Render(IRenderable renderable)
    {
        _console.Profile.Width = 240;
        _console.Write(renderable);
    }
}

/// <summary>Reading fields of the API's JSON for display.</summary>
internal static class Fields
{
    public static string? Text(this JsonNode node, string path)
    {
        JsonNode? current = node;
        foreach (var part in path.Split('.'))
        {
            current = current?[part];
        }

        return current switch
        {
            null => null,
            JsonValue value when value.TryGetValue<string>(out var text) => text,
            JsonValue value => value.ToJsonString(),
            _ => current.ToJsonString(),
        };
    }

    /// <summary>A time as people read it: UTC, to the second.</summary>
    public static string? Time(this JsonNode node, string path) =>
        node.Text(path) is { } text && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var time)
            ? time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture)
            : null;

    public static string? Endpoint(this JsonNode node) =>
        node["endpoint"] is { } endpoint ? $"{endpoint.Text("host")}:{endpoint.Text("port")}" : null;
}
