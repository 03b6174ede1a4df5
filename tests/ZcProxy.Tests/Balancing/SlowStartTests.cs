using ZcProxy.Core.Balancing;

namespace ZcProxy.Tests.Balancing;

public class SlowStartTests
{
    [Fact]
    public void EffectiveWeight_RampsLinearly_AfterRecovery()
    {
        var clock = new ManualTimeProvider();
        var runtime = new DestinationRuntime("c", "d", clock);
        var settings = new DestinationBalancingSettings { Weight = 10, SlowStart = TimeSpan.FromSeconds(20) };

        runtime.ObserveHealth(true, settings);
        Assert.Equal(10, runtime.EffectiveWeight(settings)); // healthy from the start: no ramp

        runtime.ObserveHealth(false, settings);
        clock.Advance(TimeSpan.FromSeconds(3));
        runtime.ObserveHealth(true, settings); // recovered now
        Assert.Equal(10 * SlowStartRamp.Floor, runtime.EffectiveWeight(settings), 6);

        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(2.5, runtime.EffectiveWeight(settings), 6);
        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(5, runtime.EffectiveWeight(settings), 6);
        clock.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(10, runtime.EffectiveWeight(settings), 6);
        clock.Advance(TimeSpan.FromSeconds(100));
        Assert.Equal(10, runtime.EffectiveWeight(settings), 6);
    }

    [Fact]
    public void EffectiveWeight_WithoutSlowStart_IsTheWeight()
    {
        var clock = new ManualTimeProvider();
        var runtime = new DestinationRuntime("c", "d", clock);
        var settings = new DestinationBalancingSettings { Weight = 4 };
        runtime.ObserveHealth(false, settings);
        runtime.ObserveHealth(true, settings);
        Assert.Equal(4, runtime.EffectiveWeight(settings));
    }

    [Fact]
    public async Task BreakerOpening_AndClosing_RestartsTheRamp()
    {
        var clock = new ManualTimeProvider();
        var runtime = new DestinationRuntime("c", "d", clock);
        var cluster = new ClusterBalancingSettings { MaxFails = 2, FailRatio = 1.0, FailTimeout = TimeSpan.FromSeconds(1) };
        var settings = new DestinationBalancingSettings { Weight = 10, SlowStart = TimeSpan.FromSeconds(10) };
        var breaker = runtime.BreakerFor(cluster, destinations: 2)!;

        for (int i = 0; i < 2; i++)
            Assert.True(await breaker.TryExecuteAsync(static _ => ValueTask.FromResult(true), 0));
        Assert.True(runtime.IsBroken);
        runtime.ObserveHealth(PoolRegistryHealthy(runtime), settings);

        clock.Advance(TimeSpan.FromSeconds(1.5)); // the break is over: the destination is a candidate again
        Assert.False(runtime.IsBroken);
        runtime.ObserveHealth(PoolRegistryHealthy(runtime), settings);
        Assert.Equal(10 * SlowStartRamp.Floor, runtime.EffectiveWeight(settings), 6);
        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(5, runtime.EffectiveWeight(settings), 6);
    }

    private static bool PoolRegistryHealthy(DestinationRuntime runtime) => !runtime.IsBroken;
}
