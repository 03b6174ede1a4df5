using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Core.Forwarding;

internal static class ZeroCopyForwardingExtensions
{
    /// <summary>Registers the zero-copy forwarder's services (upstream pool, metrics).</summary>
    public static IServiceCollection AddZeroCopyForwarder(this IServiceCollection services)
    {
        services.TryAddSingleton<UpstreamConnectionPool>();
        services.TryAddSingleton<RetryMetrics>();
        services.TryAddSingleton<ForwardingMetrics>();
        services.TryAddSingleton<DefaultTransforms>();
        services.TryAddSingleton<Transport.Relay.RelayIdleSweeper>();
        services.TryAddSingleton<UpgradeTunnel>();
        return services;
    }

    /// <summary>
    /// Adds the zero-copy forwarder as the last proxy step: after load balancing and passive health checks, before
    /// YARP's own forwarder, which handles whatever this step declines. ZeroCopy.Enabled is read per request.
    /// </summary>
    public static IReverseProxyApplicationBuilder UseZeroCopyForwarding(this IReverseProxyApplicationBuilder proxy)
    {
        proxy.UseMiddleware<ZeroCopyForwarder>();
        return proxy;
    }
}
