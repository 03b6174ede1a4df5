using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Tests.Diagnostics;

/// <summary>The latency series of a route and cluster: the ones asked for, whatever was asked for last.</summary>
public class RequestMetricsTests
{
    [Fact]
    public void For_AnswersTheRouteAndClusterAsked_AcrossTheLastOneKept()
    {
        var metrics = new RequestMetrics(new ProxyMetrics());
        var a = metrics.For("a", "c");
        var b = metrics.For("b", "c");

        Assert.NotSame(a, b);
        Assert.Same(a, metrics.For("a", "c"));
        Assert.Same(a, metrics.For(new string("a"), "c")); // the same ids in other string objects: the same series
        Assert.Same(b, metrics.For("b", "c"));
        Assert.NotSame(b, metrics.For("b", "d"));
        Assert.NotSame(a, metrics.For("a", ""));
    }
}
