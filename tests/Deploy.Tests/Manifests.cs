using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;

namespace Deploy.Tests;

/// <summary>What <c>helm template</c> rendered, as JSON objects (scalars as strings) to query.</summary>
public sealed class Manifests(string yaml, IReadOnlyList<JsonObject> objects)
{
    public string Yaml { get; } = yaml;

    public IReadOnlyList<JsonObject> Objects { get; } = objects;

    public static async Task<Manifests> RenderAsync(params string[] settings)
    {
        var arguments = new List<string> { "template", "release", Tools.Chart, "--namespace", "controlplane" };
        foreach (var setting in settings)
        {
            arguments.Add("--set");
            arguments.Add(setting);
        }

        var (exitCode, output, error) = await Tools.RunAsync(Tools.Helm(), [.. arguments]);
        Assert.True(exitCode == 0, $"helm template failed ({exitCode}): {error}");
        return new Manifests(output, Parse(output));
    }

    public JsonObject One(string kind, string? nameEndsWith = null) => Assert.Single(Objects,
        item => (string?)item["kind"] == kind && (nameEndsWith is null || ((string?)item["metadata"]?["name"])?.EndsWith(nameEndsWith, StringComparison.Ordinal) == true));

    public IEnumerable<JsonObject> All(string kind) => Objects.Where(item => (string?)item["kind"] == kind);

    private static List<JsonObject> Parse(string yaml)
    {
        var deserializer = new DeserializerBuilder().Build();
        var json = new SerializerBuilder().JsonCompatible().Build();
        var parser = new Parser(new StringReader(yaml));
        parser.Consume<StreamStart>();
        var objects = new List<JsonObject>();
        while (parser.Accept<DocumentStart>(out _))
        {
            var document = deserializer.Deserialize<object?>(parser);
            if (document is not null && JsonNode.Parse(json.Serialize(document)) is JsonObject item)
            {
                objects.Add(item);
            }
        }

        return objects;
    }
}
