using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;

namespace ZcProxy.Cli;

/// <summary>Loads and validates the whole configuration without binding anything (like `nginx -t`).</summary>
internal static class CheckCommand
{
    /// <summary>The main file and its includes, validated; every problem at once (file + JSON path).</summary>
    public static Task<(LoadedConfig? Config, List<ConfigError> Errors)> LoadAndValidateAsync(string mainFile)
        => ProxyServices.LoadAndValidateAsync(mainFile);

    public static async Task<int> RunAsync(string mainFile)
    {
        var (config, errors) = await LoadAndValidateAsync(mainFile);
        if (config is null)
        {
            foreach (var error in errors) Console.Error.WriteLine(error);
            return 1;
        }
        Console.WriteLine($"configuration OK: {Path.GetFullPath(mainFile)} ({config.Files.Count} files, {config.Routes.Count} routes, {config.Clusters.Count} clusters)");
        return 0;
    }
}
