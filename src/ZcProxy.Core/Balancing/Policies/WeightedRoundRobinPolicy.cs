using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing;

namespace ZcProxy.Core.Balancing.Policies;

/// <summary>"RoundRobin" honouring destination weights (after slow start): nginx's default balancing.</summary>
internal sealed class WeightedRoundRobinPolicy(DestinationRegistry pools) : ILoadBalancingPolicy
{
    public string Name => ZcLoadBalancingPolicies.RoundRobin;

    public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations)
        => SmoothWeightedRoundRobin.For(cluster).Pick(availableDestinations, d => pools.EffectiveWeight(cluster.ClusterId, d));
}
