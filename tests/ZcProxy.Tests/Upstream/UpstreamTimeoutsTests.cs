using Yarp.ReverseProxy.Forwarder;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Tests.Upstream;

/// <summary>
/// Which timeouts one upstream exchange gets: the functional tests time out a silent head and a stalled body with
/// short values; this proves where each value comes from (the cluster's ActivityTimeout over the ZeroCopy defaults).
/// </summary>
public class UpstreamTimeoutsTests
{
    private static readonly ZeroCopyOptions Defaults = new()
    {
        ConnectTimeout = TimeSpan.FromSeconds(5), ResponseHeadTimeout = TimeSpan.FromSeconds(60), BodyIdleTimeout = TimeSpan.FromSeconds(61),
    };

    [Fact]
    public void WithoutClusterSettings_TheZeroCopyDefaultsApply()
    {
        Assert.Equal(new UpstreamTimeouts(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(61)),
            UpstreamTimeouts.For(Defaults, null));
        Assert.Equal(new UpstreamTimeouts(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(61)),
            UpstreamTimeouts.For(Defaults, new ForwarderRequestConfig()));
    }

    [Fact]
    public void TheClustersActivityTimeout_GovernsTheHeadAndTheBodyIdle_AsYarpAppliesIt()
    {
        var timeouts = UpstreamTimeouts.For(Defaults, new ForwarderRequestConfig { ActivityTimeout = TimeSpan.FromMilliseconds(300) });

        Assert.Equal(TimeSpan.FromMilliseconds(300), timeouts.ResponseHead);
        Assert.Equal(TimeSpan.FromMilliseconds(300), timeouts.BodyIdle);
        Assert.Equal(TimeSpan.FromSeconds(5), timeouts.Connect);
    }

    [Fact]
    public void TheClustersConnectTimeoutMetadata_GovernsTheConnect_AndABadValueLeavesTheDefault()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(300),
            UpstreamTimeouts.For(Defaults, null, new Dictionary<string, string> { ["ConnectTimeout"] = "300ms" }).Connect);
        Assert.Equal(TimeSpan.FromSeconds(5),
            UpstreamTimeouts.For(Defaults, null, new Dictionary<string, string> { ["ConnectTimeout"] = "0s" }).Connect);
    }
}
