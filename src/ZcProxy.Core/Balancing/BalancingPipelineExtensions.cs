using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// The pool steps of the proxy pipeline (<see cref="UsePool"/>): UseAdminState, UseSessionAffinity, UseCircuitBreakers,
/// UseBackupDestinations, UseLoadBalancing, UsePassiveHealthChecksWhereEnabled, then the upstream tries (one frame:
/// upstream timing, retries, and per try the connection limits, the breakers' feedback and the forwarder).
/// </summary>
internal static class BalancingPipelineExtensions
{
    /// <summary>
    /// The pool steps and the upstream tries, with <see cref="PoolFastPath"/> in front: a request the steps would not
    /// change goes straight to the tries.
    /// </summary>
    /// <param name="tries">Makes the upstream tries given the step after them (YARP's forwarder, their fallback).</param>
    public static IReverseProxyApplicationBuilder UsePool(this IReverseProxyApplicationBuilder proxy, Func<IServiceProvider, RequestDelegate, RequestDelegate> tries)
    {
        var fast = proxy.ApplicationServices.GetRequiredService<PoolFastPath>();
        proxy.Use(next =>
        {
            var upstream = tries(proxy.ApplicationServices, next);
            var steps = new ProxyBranch(proxy.New());
            steps.UseAdminState();
            steps.UseSessionAffinity();
            steps.UseCircuitBreakers();
            steps.UseBackupDestinations();
            steps.UseLoadBalancing();
            steps.UsePassiveHealthChecksWhereEnabled();
            steps.Run(upstream);
            var full = steps.Build();
            return context => fast.InvokeAsync(context, full, upstream);
        });
        return proxy;
    }

    /// <summary>Before UseSessionAffinity: the runtime API's drain/disable states.</summary>
    public static IReverseProxyApplicationBuilder UseAdminState(this IReverseProxyApplicationBuilder proxy)
        => proxy.UseStep<AdminStateStep>(static (s, c, n) => s.InvokeAsync(c, n));

    public static IReverseProxyApplicationBuilder UseCircuitBreakers(this IReverseProxyApplicationBuilder proxy)
        => proxy.UseStep<CircuitBreakerStep>(static (s, c, n) => s.InvokeAsync(c, n));

    public static IReverseProxyApplicationBuilder UseBackupDestinations(this IReverseProxyApplicationBuilder proxy)
        => proxy.UseStep<BackupDestinationsStep>(static (s, c, n) => s.InvokeAsync(c, n));

    /// <summary>
    /// YARP's passive health checks, run only for clusters that enable them: YARP's middleware is an async frame around
    /// the whole try for every request (a box each time the upstream read suspends it) and does nothing afterwards
    /// unless the cluster's HealthCheck.Passive.Enabled is set.
    /// </summary>
    public static IReverseProxyApplicationBuilder UsePassiveHealthChecksWhereEnabled(this IReverseProxyApplicationBuilder proxy)
    {
        proxy.Use(next =>
        {
            var health = ActivatorUtilities.CreateInstance<PassiveHealthCheckMiddleware>(proxy.ApplicationServices, next);
            return context => PassiveHealthEnabled(context.ReverseProxyFeature().Cluster) ? health.Invoke(context) : next(context);
        });
        return proxy;
    }

    internal static bool PassiveHealthEnabled(ClusterModel cluster) => cluster.Config.HealthCheck?.Passive?.Enabled == true;

    private static IReverseProxyApplicationBuilder UseStep<TStep>(this IReverseProxyApplicationBuilder proxy,
        Func<TStep, Microsoft.AspNetCore.Http.HttpContext, Microsoft.AspNetCore.Http.RequestDelegate, Task> invoke) where TStep : notnull
    {
        var step = proxy.ApplicationServices.GetRequiredService<TStep>();
        // The RequestDelegate form: Use((context, Func<Task> next) => ...) allocates a closure and a delegate per request and step.
        proxy.Use(next => context => invoke(step, context, next));
        return proxy;
    }
}
