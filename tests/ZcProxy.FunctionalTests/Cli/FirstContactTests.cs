using System.Diagnostics;
using System.Xml.Linq;

namespace ZcProxy.Tests.Cli;

/// <summary>What a new user types first: the README's run command and `zcproxy --version`.</summary>
public class FirstContactTests
{
    [Fact]
    public async Task DotnetRun_WorkingDirectory_PicksTheRepositorysDefaultConfig()
    {
        // `dotnet run --project src/ZcProxy` starts the program in the project's RunWorkingDirectory. Asked there, without
        // --config, the program must find the repository's conf/zcproxy.json (the demo config the README promises).
        var runDirectory = await MsBuildPropertyAsync(Path.Combine(Repository.Root, "src", "ZcProxy", "ZcProxy.csproj"), "RunWorkingDirectory");
        using var check = ProxyProcess.Start(["check"], workingDirectory: runDirectory);
        await check.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.True(check.ExitCode == 0, check.Output);
        Assert.StartsWith($"configuration OK: {Path.Combine(Repository.Root, "conf", "zcproxy.json")} ", check.Output);
    }

    [Fact]
    public async Task Version_IsTheOneInDirectoryBuildProps()
    {
        var version = XDocument.Load(Path.Combine(Repository.Root, "Directory.Build.props")).Descendants("Version").Single().Value;

        var (code, output) = await ProxyProcess.RunAsync("--version");

        Assert.Equal(0, code);
        Assert.Equal($"zcproxy {version}", output.Trim());
    }

    private static async Task<string> MsBuildPropertyAsync(string project, string property)
    {
        var info = new ProcessStartInfo("dotnet", ["msbuild", project, $"-getProperty:{property}", "-nologo"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var msbuild = Process.Start(info)!;
        var stdout = msbuild.StandardOutput.ReadToEndAsync();
        var stderr = msbuild.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await msbuild.WaitForExitAsync(timeout.Token);
        Assert.True(msbuild.ExitCode == 0, $"dotnet msbuild -getProperty:{property}: {await stdout}{await stderr}");
        return (await stdout).Trim();
    }
}
