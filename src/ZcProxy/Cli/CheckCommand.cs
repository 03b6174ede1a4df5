using ZcProxy.Core.Configuration;
using ZcProxy.Hosting;

namespace ZcProxy.Cli;

/// <summary>Loads and validates the whole configuration without binding anything (like `nginx -t`).</summary>
internal static class CheckCommand
{
    public static async Task<(LoadedConfig? Config, List<ConfigError> Errors)> LoadAndValidateAsync(string mainFile)
    {
        var errors = new List<ConfigError>();
        if (!File.Exists(mainFile))
        {
            errors.Add(new(mainFile, "$", "the configuration file does not exist"));
            return (null, errors);
        }
        var config = ConfigFileLoader.Load(mainFile, errors);
        if (config is not null) errors.AddRange(await ProxyServices.ValidateAsync(config));
        return (errors.Count == 0 ? config : null, errors);
    }

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
