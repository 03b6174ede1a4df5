using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// Wraps YARP's <see cref="IDestinationHealthUpdater"/> so that a destination's slow-start ramp begins when an
/// active health probe (or passive policy) marks it healthy again, even while its cluster had no traffic. Requests
/// also observe health (see <see cref="CircuitBreakerStep"/>), which covers the breaker and passive reactivation.
/// </summary>
internal sealed class HealthTransitionObserver(IDestinationHealthUpdater inner, DestinationRegistry pools) : IDestinationHealthUpdater
{
    public void SetActive(ClusterState cluster, IEnumerable<NewActiveDestinationHealth> newHealthStates)
    {
        var states = newHealthStates as IReadOnlyCollection<NewActiveDestinationHealth> ?? newHealthStates.ToList();
        inner.SetActive(cluster, states);
        foreach (var state in states) Observe(cluster, state.Destination);
    }

    public void SetPassive(ClusterState cluster, DestinationState destination, DestinationHealth newHealth, TimeSpan reactivationPeriod)
    {
        inner.SetPassive(cluster, destination, newHealth, reactivationPeriod);
        Observe(cluster, destination);
    }

    private void Observe(ClusterState cluster, DestinationState destination)
    {
        var runtime = pools.Get(cluster.ClusterId, destination);
        var settings = destination.Model is { } m ? DestinationBalancingSettings.For(m.Config) : DestinationBalancingSettings.Default;
        runtime.ObserveHealth(DestinationRegistry.IsHealthy(destination, runtime), settings);
    }
}
