using Yarp.ReverseProxy.Configuration;

namespace ZcProxy.Core.Configuration;

/// <summary>
/// The one place that decides which clusters serve TCP streams: those a <c>Streams</c> entry names. Their destinations
/// are <c>tcp://HOST:PORT</c>, and YARP, which still keeps their destinations' state (health, the pools' policies), must
/// never probe them over HTTP: their active health checks are ZcProxy's TCP connects instead.
/// </summary>
internal static class StreamClusters
{
    /// <summary>The ids of the clusters named by streams (case-insensitive, as YARP's ids).</summary>
    public static HashSet<string> Named(ZcProxyOptions options)
        => new(options.Streams.Values.Select(s => s?.ClusterId).Where(id => !string.IsNullOrEmpty(id))!, StringComparer.OrdinalIgnoreCase);

    /// <summary>The clusters as YARP gets them: stream clusters without YARP's (HTTP) active health check.</summary>
    public static IReadOnlyList<ClusterConfig> ForYarp(LoadedConfig config)
    {
        var streamClusters = Named(config.Options);
        if (streamClusters.Count == 0) return config.Clusters;
        return config.Clusters.Select(c => streamClusters.Contains(c.ClusterId) && c.HealthCheck?.Active is { Enabled: true } active
            ? c with { HealthCheck = c.HealthCheck with { Active = active with { Enabled = false } } }
            : c).ToList();
    }
}
