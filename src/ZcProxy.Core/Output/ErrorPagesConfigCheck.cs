using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Output;

/// <summary>`check` for error pages: statuses 400-599, files that exist, can be read and are at most 1 MiB.</summary>
internal sealed class ErrorPagesConfigCheck : IConfigCheck
{
    public IEnumerable<ConfigError> Check(LoadedConfig config)
    {
        var main = config.Files[0];
        var baseDirectory = Path.GetDirectoryName(main)!;
        var errors = new List<ConfigError>();
        foreach (var (statuses, value) in config.Options.ErrorPages)
            CheckOne(statuses, value, main, $"$.ErrorPages.{statuses}", baseDirectory, errors);
        foreach (var cluster in config.Clusters)
        {
            if (cluster.Metadata is null) continue;
            var at = config.ClusterSources[cluster.ClusterId];
            foreach (var (status, value) in ErrorPageSpec.FromClusterMetadata(cluster.Metadata))
                CheckOne(status, value, at.File, $"{at.JsonPath}.Metadata.{ErrorPageSpec.ClusterKeyPrefix}{status}", baseDirectory, errors);
        }
        return errors;
    }

    private static void CheckOne(string statuses, string value, string file, string path, string baseDirectory, List<ConfigError> errors)
    {
        if (ErrorPageSpec.ParseStatuses(statuses, out var statusError) is null) errors.Add(new(file, path, statusError!));
        if (ErrorPageSpec.Load(value, baseDirectory, out var pageError) is null) errors.Add(new(file, path, pageError!));
    }
}
