using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// Pipeline step before load balancing: records every destination's health (YARP's checks and our breaker; a
/// destination healthy again starts its slow-start ramp) and removes destinations out of rotation from the
/// candidates: those whose breaker is open, and draining ones (unless session affinity bound the request to one,
/// see <see cref="AdminStateStep"/>).
/// </summary>
internal sealed class CircuitBreakerStep(DestinationRegistry pools)
{
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var proxy = context.ReverseProxyFeature();
        var clusterId = proxy.Cluster.Config.ClusterId;
        var settings = ClusterBalancingSettings.For(proxy.Cluster.Config);
        bool anyOut = false;
        var all = proxy.AllDestinations;
        for (int i = 0; i < all.Count; i++) // indexed: foreach over the interface would box an enumerator per request
        {
            var d = all[i];
            var runtime = pools.Get(clusterId, d);
            runtime.BreakerFor(settings, all.Count);
            anyOut |= runtime.IsOutOfRotation;
            runtime.ObserveHealth(DestinationRegistry.IsHealthy(d, runtime), d.Model is { } m ? DestinationBalancingSettings.For(m.Config) : DestinationBalancingSettings.Default);
        }
        if (anyOut) proxy.AvailableDestinations = InRotation(clusterId, proxy.AvailableDestinations, AdminStateStep.BoundByAffinity(context, proxy.AvailableDestinations));
        return next(context);
    }

    // Apart from InvokeAsync: a lambda there capturing its locals would cost a closure on every request.
    private List<DestinationState> InRotation(string clusterId, IReadOnlyList<DestinationState> available, bool bound) => available.Where(d =>
    {
        var runtime = pools.Get(clusterId, d);
        return !runtime.IsBroken && (runtime.AdminState == DestinationAdminState.Enabled || bound && runtime.AdminState == DestinationAdminState.Draining);
    }).ToList();
}
