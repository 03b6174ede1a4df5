using Yarp.ReverseProxy.Configuration;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Balancing.Policies;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// `check` and reload validation of the pool settings in cluster and destination Metadata: bad weights, sizes,
/// durations and statuses, unknown hash keys, a HashKey without the ConsistentHash policy, and pools made only
/// of backups. Each problem names the file and the JSON path of the offending key.
/// </summary>
internal sealed class BalancingConfigCheck : IConfigCheck
{
    public IEnumerable<ConfigError> Check(LoadedConfig config)
    {
        var errors = new List<ConfigError>();
        foreach (var cluster in config.Clusters)
        {
            if (!config.ClusterSources.TryGetValue(cluster.ClusterId, out var at)) continue;
            ClusterBalancingSettings.Parse(cluster.Metadata, (key, message) => errors.Add(new(at.File, $"{at.JsonPath}.Metadata.{key}", message)));
            if (cluster.Metadata?.ContainsKey(BalancingMetadataKeys.HashKey) == true
                && !string.Equals(cluster.LoadBalancingPolicy, ZcLoadBalancingPolicies.ConsistentHash, StringComparison.OrdinalIgnoreCase))
                errors.Add(new(at.File, $"{at.JsonPath}.Metadata.{BalancingMetadataKeys.HashKey}",
                    $"HashKey is only used with \"LoadBalancingPolicy\": \"{ZcLoadBalancingPolicies.ConsistentHash}\""));

            var destinations = cluster.Destinations ?? new Dictionary<string, DestinationConfig>();
            int backups = 0;
            foreach (var (name, destination) in destinations)
            {
                var settings = DestinationBalancingSettings.Parse(destination.Metadata,
                    (key, message) => errors.Add(new(at.File, $"{at.JsonPath}.Destinations.{name}.Metadata.{key}", message)));
                if (settings.Backup) backups++;
            }
            if (destinations.Count > 0 && backups == destinations.Count)
                errors.Add(new(at.File, $"{at.JsonPath}.Destinations",
                    "every destination is a Backup: a pool needs at least one primary destination (backups serve only while no primary can)"));
        }
        return errors;
    }
}
