namespace Deploy.Tests;

public sealed class BicepTests
{
    public static TheoryData<string> Templates() => [.. Directory.EnumerateFiles(Tools.BicepDirectory, "*.bicep", SearchOption.AllDirectories)
        .Select(path => Path.GetRelativePath(Tools.BicepDirectory, path)).Order(StringComparer.Ordinal)];

    public static TheoryData<string> ParameterFiles() => [.. Directory.EnumerateFiles(Tools.BicepDirectory, "*.bicepparam")
        .Select(path => Path.GetFileName(path)).Order(StringComparer.Ordinal)];

    [Theory]
    [MemberData(nameof(Templates))]
    public async Task Every_template_builds_and_lints_without_a_warning(string template)
    {
        var path = Path.Combine(Tools.BicepDirectory, template);

        var build = await Tools.RunAsync(Tools.Bicep(), "build", path, "--stdout");
        var lint = await Tools.RunAsync(Tools.Bicep(), "lint", path);

        Assert.True(build.ExitCode == 0, $"bicep build {template}: {build.Error}");
        Assert.True(string.IsNullOrWhiteSpace(build.Error), $"bicep build {template} warned: {build.Error}");
        Assert.True(lint.ExitCode == 0 && string.IsNullOrWhiteSpace(lint.Error + lint.Output), $"bicep lint {template}: {lint.Output}{lint.Error}");
    }

    [Theory]
    [MemberData(nameof(ParameterFiles))]
    public async Task Every_parameter_file_builds_and_lints_without_a_warning(string parameters)
    {
        var path = Path.Combine(Tools.BicepDirectory, parameters);

        var build = await Tools.RunAsync(Tools.Bicep(), "build-params", path, "--stdout");
        var lint = await Tools.RunAsync(Tools.Bicep(), "lint", path);

        Assert.True(build.ExitCode == 0, $"bicep build-params {parameters}: {build.Error}");
        Assert.True(string.IsNullOrWhiteSpace(build.Error), $"bicep build-params {parameters} warned: {build.Error}");
        Assert.True(lint.ExitCode == 0 && string.IsNullOrWhiteSpace(lint.Error + lint.Output), $"bicep lint {parameters}: {lint.Output}{lint.Error}");
    }

    [Fact]
    public async Task The_azure_backends_identity_gets_a_custom_role_for_tenant_groups_and_container_apps_not_contributor()
    {
        var build = await Tools.RunAsync(Tools.Bicep(), "build", Path.Combine(Tools.BicepDirectory, "main.bicep"), "--stdout");

        Assert.Equal(0, build.ExitCode);
        Assert.Contains("Microsoft.App/managedEnvironments/join/action", build.Output, StringComparison.Ordinal);
        Assert.Contains("Microsoft.Resources/subscriptions/resourceGroups/write", build.Output, StringComparison.Ordinal);
        // Contributor's and Owner's role ids must not be granted anywhere.
        Assert.DoesNotContain("b24988ac-6180-42a0-ab88-20f7382dd24c", build.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", build.Output, StringComparison.Ordinal);
    }
}
