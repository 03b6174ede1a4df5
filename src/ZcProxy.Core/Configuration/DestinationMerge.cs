using Yarp.ReverseProxy.Configuration;
using ZcProxy.Core.Discovery;

namespace ZcProxy.Core.Configuration;

/// <summary>
/// The one place where the files' configuration and discovered destinations meet. Clusters keep every setting from the
/// files; their destinations become the files' plus the discovered ones. The merged configuration goes through the same
/// <see cref="ConfigValidator"/> as a file edit; a problem located in a discovered destination rejects that destination
/// only (the rest applies), one that cannot be located rejects the cluster's discovered destinations.
/// </summary>
internal static class DestinationMerge
{
    public static async Task<(LoadedConfig Merged, List<DiscoveryRejection> Rejected)> MergeAsync(
        LoadedConfig files, IEnumerable<DiscoveredDestination> discovered, ConfigValidator validator)
    {
        var rejected = new List<DiscoveryRejection>();
        var clusters = files.Clusters.ToDictionary(c => c.ClusterId, StringComparer.OrdinalIgnoreCase);
        var candidates = new Dictionary<string, List<DiscoveredDestination>>(StringComparer.OrdinalIgnoreCase);
        foreach (var d in discovered)
        {
            if (!clusters.TryGetValue(d.ClusterId, out var cluster))
                rejected.Add(new(d.Origin, $"cluster '{d.ClusterId}' is not defined in any configuration file"));
            else if (cluster.Destinations?.ContainsKey(d.DestinationId) == true)
                rejected.Add(new(d.Origin, $"destination '{d.DestinationId}' is already defined for cluster '{d.ClusterId}' in {files.ClusterSources[cluster.ClusterId].File}"));
            else if (candidates.TryGetValue(cluster.ClusterId, out var list) && list.Any(o => string.Equals(o.DestinationId, d.DestinationId, StringComparison.OrdinalIgnoreCase)))
                rejected.Add(new(d.Origin, $"destination '{d.DestinationId}' of cluster '{d.ClusterId}' is announced twice"));
            else
                (candidates.TryGetValue(cluster.ClusterId, out list) ? list : candidates[cluster.ClusterId] = []).Add(d);
        }

        // Validate, drop what the errors point at, and again: a dropped destination can change nothing else, so two rounds
        // settle it; the third only runs when an error could not be located and a cluster's discovered set went whole.
        for (int round = 0; round < 3 && candidates.Count > 0; round++)
        {
            var merged = Apply(files, candidates);
            var errors = await validator.ValidateAsync(merged);
            bool dropped = false;
            foreach (var error in errors)
            {
                foreach (var (clusterId, list) in candidates)
                {
                    var at = files.ClusterSources[clusters[clusterId].ClusterId];
                    if (error.File != at.File || !IsWithin(error.JsonPath, at.JsonPath)) continue;
                    var culprit = list.FirstOrDefault(d => IsWithin(error.JsonPath, $"{at.JsonPath}.Destinations.{d.DestinationId}"));
                    if (culprit is not null)
                    {
                        rejected.Add(new(culprit.Origin, Relative(error.JsonPath, $"{at.JsonPath}.Destinations.{culprit.DestinationId}", error.Message)));
                        list.Remove(culprit);
                    }
                    else if (list.Count > 0)
                    {
                        // Valid alone, invalid together (e.g. a pool of backups only): the cluster keeps its files' destinations.
                        rejected.AddRange(list.Select(d => new DiscoveryRejection(d.Origin, $"cluster '{clusterId}' with it: {error.Message}")));
                        list.Clear();
                    }
                    dropped = true;
                }
            }
            foreach (var empty in candidates.Where(c => c.Value.Count == 0).Select(c => c.Key).ToList()) candidates.Remove(empty);
            if (!dropped) return (merged, rejected);
        }
        return (Apply(files, candidates), rejected);
    }

    private static LoadedConfig Apply(LoadedConfig files, Dictionary<string, List<DiscoveredDestination>> candidates)
    {
        if (candidates.Count == 0) return files;
        var clusters = files.Clusters.Select(c =>
        {
            if (!candidates.TryGetValue(c.ClusterId, out var list)) return c;
            var destinations = new Dictionary<string, DestinationConfig>(StringComparer.OrdinalIgnoreCase);
            foreach (var (id, d) in c.Destinations ?? new Dictionary<string, DestinationConfig>()) destinations[id] = d;
            foreach (var d in list) destinations[d.DestinationId] = d.Config;
            return c with { Destinations = destinations };
        }).ToList();
        return files with { Clusters = clusters };
    }

    private static bool IsWithin(string path, string prefix) =>
        path.StartsWith(prefix, StringComparison.Ordinal) && (path.Length == prefix.Length || path[prefix.Length] == '.');

    /// <summary>"Address: 'x' is not ..." rather than the files' JSON path, which the value in etcd does not have.</summary>
    private static string Relative(string path, string destinationPath, string message) =>
        path.Length > destinationPath.Length ? $"{path[(destinationPath.Length + 1)..]}: {message}" : message;
}
