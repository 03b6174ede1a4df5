using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Upstream.Pools;

namespace ZcProxy.Core.Upstream.LoadBalancing;

/// <summary>"RoundRobin" honouring destination weights (after slow start): nginx's default balancing.</summary>
internal sealed class WeightedRoundRobinPolicy(PoolRegistry pools) : ILoadBalancingPolicy
{
    public string Name => ZcLoadBalancingPolicies.RoundRobin;

    public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations)
        => SmoothWeightedRoundRobin.For(cluster).Pick(availableDestinations, d => pools.EffectiveWeight(cluster.ClusterId, d));
}
