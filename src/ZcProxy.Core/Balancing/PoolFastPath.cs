using System.Collections.Frozen;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// The pool steps in one call for the usual request: a <see cref="PoolPlan.Plain"/> cluster whose destinations are all
/// in rotation, and no cluster on its backups. Then admin states, session affinity, breakers' filtering, backups and
/// passive health change nothing, and the request needs only what the steps would leave behind: the breakers brought to
/// the cluster's settings and every destination's health observed (<see cref="CircuitBreakerStep"/>), the request's
/// pool state (<see cref="BackupDestinationsStep.StartPool"/>) and the policy's pick (YARP's LoadBalancingMiddleware).
/// Any other request goes through the steps themselves. Measured: the six steps were ~15 % of the proxy's user-space
/// samples on 1 KiB requests (7 delegate hops, a feature lookup each, the registry's lookup by two ids several times).
/// </summary>
internal sealed class PoolFastPath(DestinationRegistry pools, BackupDestinationsStep backups, IEnumerable<ILoadBalancingPolicy> policies)
{
    private readonly FrozenDictionary<string, ILoadBalancingPolicy> _policies = policies
        .GroupBy(p => p.Name, StringComparer.OrdinalIgnoreCase).ToFrozenDictionary(g => g.Key, g => g.Last(), StringComparer.OrdinalIgnoreCase);
    private readonly ConditionalWeakTable<ClusterState, PoolPlan> _plans = new(); // a removed cluster takes its plan along
    private PoolPlan? _last; // the cluster asked for last: most requests ask for the same one

    /// <param name="steps">The pool steps followed by <paramref name="tries"/>.</param>
    /// <param name="tries">The upstream tries (the retry step around the forwarder).</param>
    public Task InvokeAsync(HttpContext context, RequestDelegate steps, RequestDelegate tries)
    {
        var proxy = context.ReverseProxyFeature();
        var available = proxy.AvailableDestinations;
        if (available.Count == 0 || backups.AnyClusterOnBackups) return steps(context); // logs of no destination, of the way back from backups
        var plan = PlanFor(proxy);
        if (!plan.Plain) return steps(context);

        var all = proxy.AllDestinations;
        var runtimes = plan.Runtimes;
        for (int i = 0; i < runtimes.Length; i++)
        {
            var runtime = runtimes[i];
            runtime.BreakerFor(plan.Settings, all.Count);
            if (runtime.IsOutOfRotation) return steps(context); // drained, disabled or broken: the steps take it out of the candidates
            runtime.ObserveHealth(DestinationRegistry.IsHealthy(all[i], runtime), plan.DestinationSettings[i]);
        }
        BackupDestinationsStep.StartPool(context, proxy, plan.Settings, available, Array.Empty<DestinationState>()).Plan = plan;
        if (available.Count == 1) proxy.AvailableDestinations = available[0];
        else if (!_policies.TryGetValue(PolicyName(proxy.Cluster.Config.LoadBalancingPolicy), out var policy))
            return steps(context); // YARP's middleware reports the unknown policy
        else proxy.AvailableDestinations = policy.PickDestination(context, proxy.Route.Cluster!, available) is { } picked ? picked : Array.Empty<DestinationState>();
        return tries(context);
    }

    /// <summary>As YARP's middleware names it: no policy configured is PowerOfTwoChoices.</summary>
    private static string PolicyName(string? configured) => string.IsNullOrEmpty(configured) ? LoadBalancingPolicies.PowerOfTwoChoices : configured;

    private PoolPlan PlanFor(IReverseProxyFeature proxy)
    {
        if (_last is { } last && last.IsCurrentFor(proxy, pools)) return last;
        var cluster = proxy.Route.Cluster!;
        if (!_plans.TryGetValue(cluster, out var plan) || !plan.IsCurrentFor(proxy, pools))
            _plans.AddOrUpdate(cluster, plan = PoolPlan.Build(proxy, pools));
        _last = plan;
        return plan;
    }
}
