using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing;

namespace ZcProxy.Tests.Balancing;

/// <summary>A zero-copy connection reuses one pool state for all its requests: nothing of one request's tries may reach the next.</summary>
public class BalancingRequestFeatureTests
{
    [Fact]
    public void Restart_ForgetsThePreviousRequestsTries()
    {
        DestinationState a = new("a"), b = new("b");
        var pool = new BalancingRequestFeature("c1", new ClusterState("c1"), ClusterBalancingSettings.Default, [a, b], []);
        pool.Tries = 2;
        pool.MarkTried(a);
        pool.Current = b;
        pool.Rejection = TryRejection.BreakerOpen;

        var settings = new ClusterBalancingSettings { Retries = 3 };
        var cluster = new ClusterState("c2");
        Assert.Same(pool, pool.Restart("c2", cluster, settings, [b], [a]));

        Assert.Equal(("c2", 0, TryRejection.None), (pool.ClusterId, pool.Tries, pool.Rejection));
        Assert.Same(cluster, pool.Cluster);
        Assert.Same(settings, pool.Settings);
        Assert.Null(pool.Current);
        Assert.False(pool.HasTried(a));
        Assert.Same(b, Assert.Single(pool.Untried(_ => true))); // not Assert.Equal: a DestinationState is a list of itself
    }
}
