using System.Text.RegularExpressions;
using ZcProxy.Core.Caching.Peers;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Caching;

/// <summary>Validation of the Cache section beyond what the JSON types enforce.</summary>
internal sealed partial class CacheConfigCheck : IConfigCheck
{
    private const long MinSliceSize = 64 * 1024;

    public IEnumerable<ConfigError> Check(LoadedConfig config)
    {
        foreach (var error in CheckRoutes(config)) yield return error;
        if (config.Options.Cache is not { } cache) yield break;
        var file = config.Files[0];
        if (cache.MaxEntrySize <= 0) yield return new(file, "$.Cache.MaxEntrySize", "must be greater than zero");
        if (cache.OpenFiles < 0) yield return new(file, "$.Cache.OpenFiles", "must not be negative (0: every hit opens its entry file)");
        if (cache.LockTimeout < TimeSpan.Zero) yield return new(file, "$.Cache.LockTimeout", "must not be negative");
        if (cache.LockTimeout > Duration.MaxTimeout) yield return new(file, "$.Cache.LockTimeout", $"must be at most {Duration.MaxTimeoutText} (a waiting request runs a timer)");
        if (cache.Inactive <= TimeSpan.Zero) yield return new(file, "$.Cache.Inactive", "must be greater than zero");
        if (cache.SliceSize != 0 && cache.SliceSize < MinSliceSize)
            yield return new(file, "$.Cache.SliceSize", $"must be 0 (off) or at least 64KiB (each slice is a cache entry and an upstream request), not {cache.SliceSize} bytes");
        for (int i = 0; i < cache.Methods.Count; i++)
            if (cache.Methods[i]?.ToUpperInvariant() is not ("GET" or "HEAD"))
                yield return new(file, $"$.Cache.Methods[{i}]", $"'{cache.Methods[i]}' cannot be cached: only GET and HEAD");
        for (int i = 0; i < cache.Statuses.Count; i++)
            if (cache.Statuses[i] is < 200 or > 599 or 206 or 304)
                yield return new(file, $"$.Cache.Statuses[{i}]", $"{cache.Statuses[i]} cannot be stored (final statuses 200-599 except 206 and 304)");
        if (string.IsNullOrWhiteSpace(cache.Key)) yield return new(file, "$.Cache.Key", "must not be empty");
        else
            foreach (Match m in Placeholder().Matches(cache.Key))
                if (!CacheKey.Placeholders.Contains(m.Groups[1].Value))
                    yield return new(file, "$.Cache.Key", $"unknown placeholder '{{{m.Groups[1].Value}}}' (known: {string.Join(", ", CacheKey.Placeholders.Select(p => "{" + p + "}"))})");
        if (cache.Peers is { } peers)
            foreach (var error in CheckPeers(file, peers, config.Options.Discovery?.Etcd is not null)) yield return error;
    }

    /// <summary>Cache.Peers: node URLs every node must spell alike (http://IP:PORT), Self among them, sane timeouts.</summary>
    private static IEnumerable<ConfigError> CheckPeers(string file, CachePeersOptions peers, bool etcd)
    {
        const string at = "$.Cache.Peers";
        if (CachePeers.NodeUrlProblem(peers.Self) is { } selfProblem) yield return new(file, $"{at}.Self", selfProblem);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < peers.Nodes.Count; i++)
        {
            if (CachePeers.NodeUrlProblem(peers.Nodes[i]) is { } problem) yield return new(file, $"{at}.Nodes[{i}]", problem);
            else if (!seen.Add(CachePeers.Normalize(peers.Nodes[i]))) yield return new(file, $"{at}.Nodes[{i}]", $"'{peers.Nodes[i]}' is listed twice");
        }
        if (peers.Nodes.Count == 0 && !etcd)
            yield return new(file, $"{at}.Nodes", "must list the nodes (Self included), or configure Discovery.Etcd to read them from {Prefix}peers/");
        else if (peers.Nodes.Count > 0 && CachePeers.NodeUrlProblem(peers.Self) is null && !seen.Contains(CachePeers.Normalize(peers.Self)))
            yield return new(file, $"{at}.Self", $"'{peers.Self}' is not one of Nodes (every node must hash keys over the same list)");
        if (peers.ConnectTimeout <= TimeSpan.Zero || peers.ConnectTimeout > Duration.MaxTimeout)
            yield return new(file, $"{at}.ConnectTimeout", $"must be greater than zero and at most {Duration.MaxTimeoutText}");
        if (peers.FailTimeout < TimeSpan.Zero || peers.FailTimeout > Duration.MaxTimeout)
            yield return new(file, $"{at}.FailTimeout", $"must not be negative and at most {Duration.MaxTimeoutText}");
    }

    /// <summary>Routes' CacheIgnoreHeaders: only names the cache knows how to ignore; CacheValid, CacheBypass and CacheMinUses: values that parse.</summary>
    private static IEnumerable<ConfigError> CheckRoutes(LoadedConfig config)
    {
        foreach (var route in config.Routes)
        {
            if (route.Metadata?.TryGetValue(CacheValid.MetadataKey, out var valid) == true && !CacheValid.TryParse(valid, out _, out var validError))
            {
                var source = config.RouteSources[route.RouteId];
                yield return new(source.File, $"{source.JsonPath}.Metadata.{CacheValid.MetadataKey}", validError);
            }
            if (route.Metadata?.TryGetValue(CacheBypass.MetadataKey, out var bypass) == true && !CacheBypass.TryParse(bypass, out _, out var bypassError))
            {
                var source = config.RouteSources[route.RouteId];
                yield return new(source.File, $"{source.JsonPath}.Metadata.{CacheBypass.MetadataKey}", bypassError);
            }
            if (route.Metadata?.TryGetValue(CacheMinUses.MetadataKey, out var minUses) == true && !CacheMinUses.TryParse(minUses, out _, out var minUsesError))
            {
                var source = config.RouteSources[route.RouteId];
                yield return new(source.File, $"{source.JsonPath}.Metadata.{CacheMinUses.MetadataKey}", minUsesError);
            }
            if (route.Metadata?.TryGetValue(CacheIgnoreHeaders.MetadataKey, out var value) != true) continue;
            var at = config.RouteSources[route.RouteId];
            var path = $"{at.JsonPath}.Metadata.{CacheIgnoreHeaders.MetadataKey}";
            var names = CacheIgnoreHeaders.Names(value);
            if (names.Length == 0) yield return new(at.File, path, $"must name a header field ({string.Join(", ", CacheIgnoreHeaders.Supported)})");
            foreach (var name in names)
                if (!CacheIgnoreHeaders.Supported.Contains(name, StringComparer.OrdinalIgnoreCase))
                    yield return new(at.File, path, $"'{name}' cannot be ignored (supported: {string.Join(", ", CacheIgnoreHeaders.Supported)})");
        }
    }

    [GeneratedRegex(@"\{([^}]*)\}")]
    private static partial Regex Placeholder();
}
