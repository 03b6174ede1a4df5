using Yarp.ReverseProxy.Configuration;

namespace ZcProxy.Core.Configuration;

/// <summary>A whole configuration (main file + includes) as read from disk, before validation.</summary>
internal sealed record LoadedConfig(
    ZcProxyOptions Options,
    IReadOnlyList<RouteConfig> Routes,
    IReadOnlyList<ClusterConfig> Clusters,
    IReadOnlyList<string> Files,
    IReadOnlyDictionary<string, ConfigSource> RouteSources,
    IReadOnlyDictionary<string, ConfigSource> ClusterSources)
{
    /// <summary>Main-file sections that could not be read (reported already); they hold their defaults here.</summary>
    public IReadOnlySet<string> UnreadSections { get; init; } = new HashSet<string>();
}

/// <summary>Where a route or cluster was defined, so validation errors can name the file and JSON path.</summary>
internal sealed record ConfigSource(string File, string JsonPath);
