using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.DependencyInjection;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Forwarding;
using ZcProxy.Core.Local;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Output;

internal static class OutputServiceCollectionExtensions
{
    /// <summary>The body sender and the report of failed transfers (the zero-copy transport, when registered, adds the kernel moves).</summary>
    public static IServiceCollection AddResponseOutput(this IServiceCollection services)
    {
        services.TryAddSingleton<ProxyMetrics>();
        services.TryAddSingleton<ForwardingMetrics>();
        services.TryAddSingleton<ResponseBodySender>();
        services.TryAddSingleton<BodyOutcomeReport>();
        services.TryAddSingleton<TimeProvider>(LoopClock.Instance); // the loops' cached time (Transport/Loops/LoopClock)
        services.TryAddSingleton<PageCacheRoom>();
        services.TryAddSingleton<FileRangeSending>();
        services.TryAddSingleton<ErrorPages>();
        services.TryAddSingleton<StaticFiles>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigCheck, ErrorPagesConfigCheck>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigCheck, LocalRouteConfigCheck>());
        return services;
    }
}
