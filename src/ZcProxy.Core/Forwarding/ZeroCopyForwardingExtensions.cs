using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing;
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
    /// The last proxy step: the upstream tries (<see cref="RetryStep"/>: upstream timing, retries, per try the
    /// connection slot and breaker) around the zero-copy forwarder, in one async frame. The forwarder declines to YARP's
    /// own (<paramref name="next"/>) per request; ZeroCopy.Enabled is read per request.
    /// </summary>
    public static RequestDelegate UpstreamTries(IServiceProvider services, RequestDelegate next)
    {
        var retries = services.GetRequiredService<RetryStep>();
        var forwarder = ActivatorUtilities.CreateInstance<ZeroCopyForwarder>(services, next);
        Func<HttpContext, ValueTask> forward = forwarder.ForwardOrDeclineAsync;
        return context => retries.InvokeAsync(context, forward);
    }
}
