using Microsoft.Extensions.Logging.Abstractions;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Balancing;

namespace ZcProxy.Tests.Balancing;

public class HealthTransitionObserverTests
{
    /// <summary>Stands in for YARP's updater: applies the new health, as it does, synchronously.</summary>
    private sealed class ApplyingUpdater : IDestinationHealthUpdater
    {
        public void SetActive(ClusterState cluster, IEnumerable<NewActiveDestinationHealth> newHealthStates)
        {
            foreach (var s in newHealthStates) s.Destination.Health.Active = s.NewActiveHealth;
        }

        public void SetPassive(ClusterState cluster, DestinationState destination, DestinationHealth newHealth, TimeSpan reactivationPeriod)
            => destination.Health.Passive = newHealth;
    }

    [Fact]
    public void ActiveProbeMarkingHealthyAgain_StartsTheSlowStartRamp_WithoutAnyRequest()
    {
        var clock = new ManualTimeProvider();
        var pools = new DestinationRegistry(clock, new ProxyMetrics(), NullLogger<DestinationRegistry>.Instance);
        var observer = new HealthTransitionObserver(new ApplyingUpdater(), pools);
        var cluster = new ClusterState("c");
        var destination = new DestinationState("d");
        var settings = new DestinationBalancingSettings { Weight = 8, SlowStart = TimeSpan.FromSeconds(10) };

        observer.SetActive(cluster, [new NewActiveDestinationHealth(destination, DestinationHealth.Unhealthy)]);
        clock.Advance(TimeSpan.FromMinutes(1));
        observer.SetActive(cluster, [new NewActiveDestinationHealth(destination, DestinationHealth.Healthy)]);
        var runtime = pools.Get("c", "d");
        Assert.Equal(8 * SlowStartRamp.Floor, runtime.EffectiveWeight(settings), 6);
        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(4, runtime.EffectiveWeight(settings), 6);

        observer.SetPassive(cluster, destination, DestinationHealth.Unhealthy, TimeSpan.FromSeconds(30));
        Assert.False(runtime.Healthy);
    }
}
