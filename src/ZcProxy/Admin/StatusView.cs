using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing;
using ZcProxy.Core.Caching.Peers;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Discovery;

namespace ZcProxy.Admin;

/// <summary>
/// What GET {Admin}/status shows (and the status page polls every second): configuration, clusters with their
/// destinations' health and pool state, discovery sources (current or stale since when), body bytes by mechanism and cache requests by status. The runtime API
/// answers with one destination's part.
/// </summary>
internal static class StatusView
{
    private static readonly string[] Mechanisms = ["sendfile", "splice", "directio", "copy"];

    public static object Of(IProxyStateLookup state, FileConfigProvider config, DestinationRegistry pools, ProxyMetrics metrics,
        DiscoveryStatus discovery, CachePeers? peers = null) => new
    {
        config = new { file = config.MainFile, routes = config.Current.Routes.Count, clusters = config.Current.Clusters.Count },
        // Each registry: is its view current, or since when is it stale (its last good set still served).
        discovery = discovery.Sources.Select(s => new
        {
            source = s.Source,
            target = s.Target,
            current = s.Current,
            staleSince = s.StaleSince,
            lastError = s.LastError,
            lastChange = s.LastChange,
            destinations = s.Destinations,
            rejected = config.RejectedBySource.GetValueOrDefault(s.Source),
        }),
        clusters = state.GetClusters().OrderBy(c => c.ClusterId, StringComparer.Ordinal).Select(c => new
        {
            id = c.ClusterId,
            loadBalancingPolicy = c.Model.Config.LoadBalancingPolicy ?? "PowerOfTwoChoices",
            destinations = c.Destinations.Values.OrderBy(d => d.DestinationId, StringComparer.Ordinal).Select(d => Destination(c, d, pools)),
        }),
        // Counters since start: the page turns them into rates.
        bodyBytes = Mechanisms.ToDictionary(m => m, m => Enum.GetValues<BodyDirection>().Sum(d => metrics.GetBodyBytes(Mechanism(m), d))),
        cache = metrics.TryCounterValues("zcproxy_cache_requests_total", "status"),
        // Cache.Peers: the nodes keys are sharded over, and those skipped after a failed connect.
        peers = peers?.Describe(),
    };

    public static object Destination(ClusterState cluster, DestinationState d, DestinationRegistry pools) => new
    {
        id = d.DestinationId,
        cluster = cluster.ClusterId,
        address = d.Model.Config.Address,
        health = new { active = d.Health.Active.ToString(), passive = d.Health.Passive.ToString() },
        activeRequests = pools.Get(cluster.ClusterId, d).ActiveRequests, // ZcProxy's count, the same on both forwarding paths
        pool = DestinationStatus.Describe(pools, cluster.ClusterId, d),
    };

    private static BodyMechanism Mechanism(string label) => label switch
    {
        "sendfile" => BodyMechanism.Sendfile,
        "splice" => BodyMechanism.Splice,
        "directio" => BodyMechanism.DirectIo,
        _ => BodyMechanism.Copy,
    };
}
