using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing;
using ZcProxy.Core.Caching;
using ZcProxy.Core.Compression;
using ZcProxy.Core.RateLimiting;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// The proxy-pipeline steps that only some routes ask for in their Metadata (a rate-limit policy, compression, the
/// cache), run as one branch that a route without any of them skips in one call. Whether a route needs the branch is
/// decided once per route configuration (a reload makes new ones), as <see cref="PoolFastPath"/> decides per cluster.
/// Measured before: on a route with none, each step was a delegate call and a feature lookup per request (rate limit
/// 0.17 %, compression 0.05 % of the loop threads' samples), and with a Cache section configured the cache step was
/// also an async frame and a closure per request on every route.
/// </summary>
internal sealed class RouteSteps
{
    // Per route configuration, the last one answering without the table (a removed route takes its decision along).
    private readonly SettingsByConfig<RouteConfig, bool> _needed = new(Needs);

    /// <summary>Adds the branch: <paramref name="steps"/> adds the steps (in their order) to it.</summary>
    public static IReverseProxyApplicationBuilder Use(IReverseProxyApplicationBuilder proxy, Action<IReverseProxyApplicationBuilder> steps)
    {
        var plan = new RouteSteps();
        proxy.Use(next =>
        {
            var branch = new ProxyBranch(proxy.New());
            steps(branch);
            branch.Run(next);
            var withSteps = branch.Build();
            return context => plan.Needed(context) ? withSteps(context) : next(context);
        });
        return proxy;
    }

    /// <summary>True when the request's route asks for any of the steps (or the request has no route: the steps decide).</summary>
    public bool Needed(HttpContext context)
        => context.Find<IReverseProxyFeature>()?.Route.Config is not { } route || _needed.For(route);

    /// <summary>Each step's own test of the route: any of them applying sends the request through all of them.</summary>
    internal static bool Needs(RouteConfig route)
        => RateLimitStep.MayLimit(route) || CompressionSettings.IsOn(route.Metadata) || CacheStep.IsEnabled(route);
}
