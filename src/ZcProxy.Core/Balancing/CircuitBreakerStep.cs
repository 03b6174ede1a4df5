using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// Pipeline step before load balancing: records every destination's health (YARP's checks and our breaker; a
/// destination healthy again starts its slow-start ramp) and removes destinations whose breaker is open from the
/// candidates.
/// </summary>
internal sealed class CircuitBreakerStep(DestinationRegistry pools)
{
    public Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        var proxy = context.GetReverseProxyFeature();
        var clusterId = proxy.Cluster.Config.ClusterId;
        var settings = ClusterBalancingSettings.For(proxy.Cluster.Config);
        bool anyBroken = false;
        foreach (var d in proxy.AllDestinations)
        {
            var runtime = pools.Get(clusterId, d);
            runtime.BreakerFor(settings, proxy.AllDestinations.Count);
            bool broken = runtime.IsBroken;
            anyBroken |= broken;
            runtime.ObserveHealth(DestinationRegistry.IsHealthy(d, runtime), d.Model is { } m ? DestinationBalancingSettings.For(m.Config) : DestinationBalancingSettings.Default);
        }
        if (anyBroken)
            proxy.AvailableDestinations = proxy.AvailableDestinations.Where(d => !pools.Get(clusterId, d).IsBroken).ToList();
        return next();
    }
}
