using System.Net;
using Yarp.ReverseProxy.Configuration;
using ZcProxy.Core.Balancing;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.StreamProxy;

/// <summary>
/// `check` and reload validation of the <c>Streams</c> section and of the clusters it names: listen addresses (valid,
/// not taken twice, not an HTTP or admin listener's), clusters that exist and hold only <c>tcp://HOST:PORT</c>
/// destinations, are not also an HTTP route's, and use only what applies to TCP (ClientIp hashing, TCP-connect health
/// checks). Each problem names the file and the JSON path.
/// </summary>
internal sealed class StreamsConfigCheck : IConfigCheck
{
    /// <summary>YARP's ConsecutiveFailures policy: the one active-check policy a TCP connect can feed.</summary>
    public const string ConsecutiveFailuresPolicy = "ConsecutiveFailures";

    public IEnumerable<ConfigError> Check(LoadedConfig config)
    {
        var errors = new List<ConfigError>();
        var main = config.Files[0];
        var listens = new Dictionary<IPEndPoint, string>();
        var clustersById = config.Clusters.ToDictionary(c => c.ClusterId, StringComparer.OrdinalIgnoreCase);
        foreach (var (name, stream) in config.Options.Streams)
        {
            var path = $"$.Streams.{name}";
            if (stream is null)
            {
                errors.Add(new(main, path, "must be an object with \"Listen\" and \"ClusterId\""));
                continue;
            }
            if (!StreamListenAddress.TryParse(stream.Listen, out var endPoint, out var listenError))
                errors.Add(new(main, path + ".Listen", listenError));
            else if (endPoint!.Port != 0)
            {
                if (listens.TryGetValue(endPoint, out var other)) errors.Add(new(main, path + ".Listen", $"stream '{other}' listens on {endPoint} already"));
                else listens[endPoint] = name;
                if (TakenByHttpListener(config.Options, endPoint) is { } taken) errors.Add(new(main, path + ".Listen", $"{endPoint} is the {taken}'s address"));
            }
            if (string.IsNullOrWhiteSpace(stream.ClusterId)) errors.Add(new(main, path + ".ClusterId", "is required"));
            else if (!clustersById.ContainsKey(stream.ClusterId))
                errors.Add(new(main, path + ".ClusterId", $"cluster '{stream.ClusterId}' is not defined in any configuration file"));
            if (stream.IdleTimeout <= TimeSpan.Zero) errors.Add(new(main, path + ".IdleTimeout", "must be above zero, e.g. \"10m\""));
        }

        var streamClusters = StreamClusters.Named(config.Options);
        foreach (var id in streamClusters)
            if (clustersById.TryGetValue(id, out var cluster) && config.ClusterSources.TryGetValue(cluster.ClusterId, out var at))
                CheckCluster(cluster, at, errors);
        foreach (var route in config.Routes)
        {
            if (route.ClusterId is { } id && streamClusters.Contains(id) && config.RouteSources.TryGetValue(route.RouteId, out var at))
                errors.Add(new(at.File, at.JsonPath + ".ClusterId",
                    $"cluster '{id}' serves a stream (tcp:// destinations); an HTTP route needs a cluster of http:// or https:// destinations"));
        }
        return errors;
    }

    private static void CheckCluster(ClusterConfig cluster, ConfigSource at, List<ConfigError> errors)
    {
        foreach (var (name, destination) in cluster.Destinations ?? new Dictionary<string, DestinationConfig>())
        {
            if (destination is not null && !TcpDestination.TryParse(destination.Address, out _)) // null: ConfigValidator reports it
                errors.Add(new(at.File, $"{at.JsonPath}.Destinations.{name}.Address",
                    $"'{destination.Address}' is not a stream destination: a cluster named by 'Streams' needs {TcpDestination.Syntax}"));
        }
        var settings = ClusterBalancingSettings.Parse(cluster.Metadata, static (_, _) => { });
        if (cluster.Metadata?.ContainsKey(BalancingMetadataKeys.HashKey) == true && settings.HashKey.Source != HashKeySource.ClientIp)
            errors.Add(new(at.File, $"{at.JsonPath}.Metadata.{BalancingMetadataKeys.HashKey}", "a stream cluster can only hash the client address: \"ClientIp\""));
        if (cluster.HealthCheck?.Active is { } active)
        {
            if (!string.IsNullOrEmpty(active.Path) || !string.IsNullOrEmpty(active.Query))
                errors.Add(new(at.File, $"{at.JsonPath}.HealthCheck.Active.{(string.IsNullOrEmpty(active.Path) ? "Query" : "Path")}",
                    "a stream cluster's active health check is a TCP connect: Path and Query are for HTTP clusters"));
            if (active.Policy is { } policy && !string.Equals(policy, ConsecutiveFailuresPolicy, StringComparison.OrdinalIgnoreCase))
                errors.Add(new(at.File, $"{at.JsonPath}.HealthCheck.Active.Policy", $"a stream cluster's TCP-connect checks use \"{ConsecutiveFailuresPolicy}\""));
        }
        if (cluster.HealthCheck?.Passive is { Enabled: true })
            errors.Add(new(at.File, $"{at.JsonPath}.HealthCheck.Passive",
                "passive health checks judge HTTP responses; a stream cluster's failed connects count towards MaxFails/FailTimeout in its Metadata"));
        if (cluster.SessionAffinity is { Enabled: true })
            errors.Add(new(at.File, $"{at.JsonPath}.SessionAffinity", "session affinity is HTTP (cookies, headers); a stream cluster sticks clients with \"LoadBalancingPolicy\": \"ConsistentHash\""));
    }

    /// <summary>The HTTP listener (proxy or admin) already on <paramref name="endPoint"/>'s port and address, if any.</summary>
    private static string? TakenByHttpListener(ZcProxyOptions options, IPEndPoint endPoint)
    {
        foreach (var listen in options.Listen)
            if (Overlaps(listen.Url, endPoint)) return "HTTP listener " + listen.Url;
        if (options.Admin is { } admin && Overlaps(admin.Url, endPoint)) return "admin listener " + admin.Url;
        return null;
    }

    private static bool Overlaps(string url, IPEndPoint endPoint)
    {
        if (!ListenUrl.TryParse(url, out var parsed, out _) || parsed!.Port != endPoint.Port) return false;
        if (parsed.IsLocalhost) return IPAddress.IsLoopback(endPoint.Address) || IsWildcard(endPoint.Address);
        return parsed.Address!.Equals(endPoint.Address) || IsWildcard(parsed.Address) || IsWildcard(endPoint.Address);
    }

    private static bool IsWildcard(IPAddress address) => address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any);
}
