using System.Text.Json;
using Yarp.ReverseProxy.Configuration;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Discovery;

/// <summary>
/// The key layout in etcd: {Prefix}clusters/{ClusterId}/destinations/{DestinationId}, holding a destination as the
/// config files write it: {"Address": "http://10.0.0.5:8080/", "Metadata": {"Weight": "3"}}. Other keys under the
/// prefix are left alone (room for later uses of the prefix).
/// </summary>
internal static class EtcdLayout
{
    private const string Clusters = "clusters/";
    private const string Destinations = "/destinations/";
    private const string Peers = "peers/";

    public static string Origin(string key) => $"etcd {key}";

    /// <summary>
    /// {Prefix}peers/{Name} = {"Address": "http://10.0.1.1:8080"}: a cache peer (Cache.Peers without Nodes). Null when
    /// the key is outside that layout; else the address or why the value is refused.
    /// </summary>
    public static (string? Address, string? Problem)? ParsePeer(string prefix, string key, ReadOnlySpan<byte> value)
    {
        if (!key.StartsWith(prefix + Peers, StringComparison.Ordinal) || key.Length == prefix.Length + Peers.Length) return null;
        try
        {
            using var doc = JsonDocument.Parse(value.ToArray());
            var address = doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("Address", out var a)
                && a.ValueKind == JsonValueKind.String ? a.GetString() : null;
            if (address is null) return (null, "the value must be {\"Address\": \"http://IP:PORT\"}");
            return Caching.Peers.CachePeers.NodeUrlProblem(address) is { } problem ? (null, problem) : (address, null);
        }
        catch (JsonException e)
        {
            return (null, $"invalid JSON: {e.Message}");
        }
    }

    /// <summary>Null when the key is outside the destinations layout (ignored); else the destination or why it is rejected.</summary>
    public static (DiscoveredDestination? Destination, DiscoveryRejection? Rejection)? Parse(string prefix, string key, ReadOnlySpan<byte> value)
    {
        if (!key.StartsWith(prefix + Clusters, StringComparison.Ordinal)) return null;
        var rest = key[(prefix.Length + Clusters.Length)..];
        var split = rest.IndexOf(Destinations, StringComparison.Ordinal);
        if (split < 0) return null;
        var clusterId = rest[..split];
        var destinationId = rest[(split + Destinations.Length)..];
        if (clusterId.Length == 0 || destinationId.Length == 0 || destinationId.Contains('/'))
            return (null, new(Origin(key), $"the key must be {prefix}{Clusters}{{ClusterId}}{Destinations.TrimEnd('/')}/{{DestinationId}}"));
        try
        {
            var config = JsonSerializer.Deserialize<DestinationConfig>(value, ConfigJson.SerializerOptions)
                ?? throw new JsonException("the value must be a JSON object, not null");
            return (new DiscoveredDestination(clusterId, destinationId, config, Origin(key)), null);
        }
        catch (JsonException e)
        {
            return (null, new(Origin(key), $"invalid destination JSON: {ConfigFileLoader.Describe(e)}"));
        }
    }
}
