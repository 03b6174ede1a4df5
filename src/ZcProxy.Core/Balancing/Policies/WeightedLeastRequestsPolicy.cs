using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing;

namespace ZcProxy.Core.Balancing.Policies;

/// <summary>
/// "LeastRequests" weighted like nginx's least_conn: the fewest requests in flight per unit of weight wins, and
/// ties (e.g. an idle pool) are broken by smooth weighted round-robin so that weights still shape the traffic.
/// In-flight counts are ZcProxy's own, kept around every try, so they hold for either forwarder.
/// </summary>
internal sealed class WeightedLeastRequestsPolicy(DestinationRegistry pools) : ILoadBalancingPolicy
{
    public string Name => ZcLoadBalancingPolicies.LeastRequests;

    public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations)
    {
        if (availableDestinations.Count <= 1) return availableDestinations.Count == 0 ? null : availableDestinations[0];
        var least = new List<DestinationState>(availableDestinations.Count);
        double best = double.MaxValue;
        foreach (var d in availableDestinations)
        {
            var load = pools.Get(cluster.ClusterId, d).ActiveRequests / pools.EffectiveWeight(cluster.ClusterId, d);
            if (load < best - 1e-9) { best = load; least.Clear(); least.Add(d); }
            else if (Math.Abs(load - best) <= 1e-9) least.Add(d);
        }
        return SmoothWeightedRoundRobin.For(cluster).Pick(least, d => pools.EffectiveWeight(cluster.ClusterId, d));
    }
}
