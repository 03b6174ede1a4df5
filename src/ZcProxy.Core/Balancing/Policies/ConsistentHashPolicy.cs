using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing;

namespace ZcProxy.Core.Balancing.Policies;

/// <summary>
/// "ConsistentHash" (nginx <c>hash ... consistent</c>, <c>ip_hash</c>; HAProxy <c>balance hdr()/uri</c> with
/// <c>hash-type consistent</c>): the cluster's <c>HashKey</c> picks the destination on a ring of all the cluster's
/// destinations, weighted by their configured weight. Slow start does not apply: moving keys would defeat hashing.
/// </summary>
internal sealed class ConsistentHashPolicy : ILoadBalancingPolicy
{
    private static readonly ConditionalWeakTable<ClusterConfig, HashRing> Rings = new();

    public string Name => ZcLoadBalancingPolicies.ConsistentHash;

    public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations)
    {
        if (availableDestinations.Count <= 1) return availableDestinations.Count == 0 ? null : availableDestinations[0];
        var config = cluster.Model.Config;
        var ring = Rings.GetValue(config, static c => HashRing.Build((c.Destinations ?? new Dictionary<string, DestinationConfig>())
            .Select(d => (d.Key, DestinationBalancingSettings.For(d.Value).Weight)).ToList()));
        var key = ClusterBalancingSettings.For(config).HashKey.Extract(context);
        var owner = ring.Lookup(StableHash.Of(key), id => Find(availableDestinations, id) is not null);
        return owner is null ? availableDestinations[0] : Find(availableDestinations, owner);
    }

    private static DestinationState? Find(IReadOnlyList<DestinationState> destinations, string id)
    {
        foreach (var d in destinations)
            if (string.Equals(d.DestinationId, id, StringComparison.OrdinalIgnoreCase)) return d;
        return null;
    }
}
