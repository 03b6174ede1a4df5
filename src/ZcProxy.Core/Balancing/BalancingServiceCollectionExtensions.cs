using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.LoadBalancing;
using ZcProxy.Core.Balancing.Policies;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Balancing;

internal static class BalancingServiceCollectionExtensions
{
    /// <summary>YARP's policies that ZcProxy replaces with weight-aware ones of the same name.</summary>
    private static readonly HashSet<string> ReplacedYarpPolicies = new(StringComparer.Ordinal)
    {
        "RoundRobinLoadBalancingPolicy", "LeastRequestsLoadBalancingPolicy", "PowerOfTwoChoicesLoadBalancingPolicy",
    };

    /// <summary>
    /// Weighted and consistent-hash balancing, backups, connection limits, breakers and retries. Call after
    /// AddReverseProxy: YARP's RoundRobin, LeastRequests and PowerOfTwoChoices are removed and replaced (YARP
    /// requires policy names to be unique), Random and FirstAlphabetical stay.
    /// </summary>
    public static IServiceCollection AddZcLoadBalancing(this IServiceCollection services)
    {
        services.RemoveAll(d => d.ServiceType == typeof(ILoadBalancingPolicy)
            && d.ImplementationType is { } t && t.Assembly == typeof(ILoadBalancingPolicy).Assembly && ReplacedYarpPolicies.Contains(t.Name));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<ILoadBalancingPolicy, WeightedRoundRobinPolicy>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<ILoadBalancingPolicy, WeightedLeastRequestsPolicy>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<ILoadBalancingPolicy, WeightedPowerOfTwoChoicesPolicy>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<ILoadBalancingPolicy, ConsistentHashPolicy>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigCheck, BalancingConfigCheck>());
        services.Replace(ServiceDescriptor.Singleton<IForwarderHttpClientFactory, ConnectTimeoutHttpClientFactory>());
        DecorateHealthUpdater(services);
        services.TryAddSingleton<TimeProvider>(LoopClock.Instance); // the loops' cached time (Transport/Loops/LoopClock)
        services.TryAddSingleton<RetryMetrics>();
        services.TryAddSingleton<DestinationRegistry>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<Microsoft.Extensions.Hosting.IHostedService, DestinationRegistryPruner>());
        services.TryAddSingleton<AdminStateStep>();
        services.TryAddSingleton<CircuitBreakerStep>();
        services.TryAddSingleton<BackupDestinationsStep>();
        services.TryAddSingleton<PoolFastPath>();
        services.TryAddSingleton<RetryStep>();
        services.TryAddSingleton<ConnectionLimits>();
        return services;
    }

    /// <summary>Puts <see cref="HealthTransitionObserver"/> around YARP's (internal) health updater.</summary>
    private static void DecorateHealthUpdater(IServiceCollection services)
    {
        var index = -1;
        for (int i = 0; i < services.Count; i++)
            if (services[i].ServiceType == typeof(IDestinationHealthUpdater)) index = i;
        if (index < 0 || services[index].ImplementationType is not { } innerType || innerType == typeof(HealthTransitionObserver)) return;
        services[index] = ServiceDescriptor.Singleton<IDestinationHealthUpdater>(sp => new HealthTransitionObserver(
            (IDestinationHealthUpdater)ActivatorUtilities.CreateInstance(sp, innerType), sp.GetRequiredService<DestinationRegistry>()));
    }

    private static void RemoveAll(this IServiceCollection services, Func<ServiceDescriptor, bool> match)
    {
        for (int i = services.Count - 1; i >= 0; i--)
            if (match(services[i])) services.RemoveAt(i);
    }
}
