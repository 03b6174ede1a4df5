using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing;

namespace ZcProxy.Core.Balancing.Policies;

/// <summary>
/// "PowerOfTwoChoices" with weights: two distinct candidates are drawn with probability proportional to their
/// weight, and the one with fewer requests in flight per unit of weight wins (the first drawn on a tie, so an idle
/// pool is shared by weight).
/// </summary>
internal sealed class WeightedPowerOfTwoChoicesPolicy(DestinationRegistry pools) : ILoadBalancingPolicy
{
    public string Name => ZcLoadBalancingPolicies.PowerOfTwoChoices;

    public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations)
    {
        int count = availableDestinations.Count;
        if (count <= 1) return count == 0 ? null : availableDestinations[0];
        Span<double> weights = count <= 64 ? stackalloc double[count] : new double[count];
        double total = 0;
        for (int i = 0; i < count; i++) total += weights[i] = pools.EffectiveWeight(cluster.ClusterId, availableDestinations[i]);

        int first = Draw(weights, total, exclude: -1);
        int second = Draw(weights, total - weights[first], exclude: first);
        double firstLoad = pools.Get(cluster.ClusterId, availableDestinations[first]).ActiveRequests / weights[first];
        double secondLoad = pools.Get(cluster.ClusterId, availableDestinations[second]).ActiveRequests / weights[second];
        return availableDestinations[secondLoad < firstLoad ? second : first];
    }

    private static int Draw(ReadOnlySpan<double> weights, double total, int exclude)
    {
        double x = Random.Shared.NextDouble() * total;
        int last = -1;
        for (int i = 0; i < weights.Length; i++)
        {
            if (i == exclude) continue;
            last = i;
            if ((x -= weights[i]) < 0) return i;
        }
        return last; // rounding at the top end
    }
}
