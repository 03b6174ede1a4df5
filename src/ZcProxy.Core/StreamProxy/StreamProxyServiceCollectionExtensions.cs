using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Relay;

namespace ZcProxy.Core.StreamProxy;

internal static class StreamProxyServiceCollectionExtensions
{
    /// <summary>
    /// The Streams section: its config check (also run by `check`), and for the running proxy the stream listeners and
    /// the TCP health prober. Needs the pools (AddZcLoadBalancing) and YARP's state; the event loops and the pipe pool
    /// start with the first stream.
    /// </summary>
    public static IServiceCollection AddStreamProxy(this IServiceCollection services)
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigCheck, StreamsConfigCheck>());
        services.AddEventLoops();
        services.TryAddSingleton<RelayIdleSweeper>();
        services.TryAddSingleton<StreamMetrics>();
        services.TryAddSingleton<StreamBalancer>();
        services.TryAddSingleton<StreamProxyService>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, StreamProxyService>(sp => sp.GetRequiredService<StreamProxyService>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, TcpHealthProber>());
        return services;
    }
}
