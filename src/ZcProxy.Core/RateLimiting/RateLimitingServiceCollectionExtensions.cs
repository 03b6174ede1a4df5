using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.RateLimiting;

internal static class RateLimitingServiceCollectionExtensions
{
    /// <summary>Rate-limit policies (followed across reloads), their request step, the per-client connection limit and their config check.</summary>
    public static IServiceCollection AddRateLimits(this IServiceCollection services)
    {
        services.TryAddSingleton<RateLimitMetrics>();
        services.TryAddSingleton<RateLimitPolicies>();
        services.TryAddSingleton<RateLimitStep>();
        services.TryAddSingleton<ClientConnectionLimit>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigCheck, RateLimitConfigCheck>());
        return services;
    }
}
