using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy.LoadBalancing;
using ZcProxy.Core.Balancing;

namespace ZcProxy.Tests.Balancing;

public class PolicyRegistrationTests
{
    [Fact]
    public void AddZcLoadBalancing_ReplacesYarpsWeightlessPolicies_AndKeepsTheOthers()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<ZcProxy.Core.Diagnostics.ProxyMetrics>();
        services.AddReverseProxy();
        services.AddZcLoadBalancing();
        using var provider = services.BuildServiceProvider();

        var policies = provider.GetServices<ILoadBalancingPolicy>().ToList();
        Assert.Equal(policies.Count, policies.Select(p => p.Name).Distinct(StringComparer.OrdinalIgnoreCase).Count()); // YARP requires unique names
        var ours = typeof(DestinationRegistry).Assembly;
        foreach (var name in new[] { "RoundRobin", "LeastRequests", "PowerOfTwoChoices", "ConsistentHash" })
            Assert.Equal(ours, policies.Single(p => p.Name == name).GetType().Assembly);
        foreach (var name in new[] { "Random", "FirstAlphabetical" })
            Assert.Equal(typeof(ILoadBalancingPolicy).Assembly, policies.Single(p => p.Name == name).GetType().Assembly);
        Assert.IsType<HealthTransitionObserver>(provider.GetRequiredService<Yarp.ReverseProxy.Health.IDestinationHealthUpdater>());
    }
}
