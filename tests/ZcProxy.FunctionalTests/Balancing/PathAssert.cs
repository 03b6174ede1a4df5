using ZcProxy.Core.Forwarding;
using ZcProxy.Tests.Infrastructure;
using Xunit;

namespace ZcProxy.Tests.Balancing;

/// <summary>
/// Proves which forwarder served a test's requests, so that a Theory over ZeroCopy.Enabled really covers both paths:
/// with zero copy on, every forwarded request went through ZcProxy's forwarder and none through YARP's; off, the opposite.
/// </summary>
internal static class PathAssert
{
    public static void ForwardedOn(InProcessProxy proxy, bool zeroCopy)
    {
        // zcproxy_forwarded_requests_total{path="zerocopy|yarp"}
        var forwarded = proxy.Get<ForwardingMetrics>();
        long zc = forwarded.ZeroCopy.Value, yarp = forwarded.Yarp.Value;
        if (zeroCopy)
        {
            Assert.True(zc > 0, $"zero-copy path expected, but zerocopy={zc} yarp={yarp}");
            Assert.True(yarp == 0, $"no request may take YARP's forwarder on the zero-copy path, but zerocopy={zc} yarp={yarp}");
        }
        else
        {
            Assert.True(yarp > 0, $"YARP's path expected, but zerocopy={zc} yarp={yarp}");
            Assert.True(zc == 0, $"no request may take the zero-copy forwarder with ZeroCopy.Enabled false, but zerocopy={zc} yarp={yarp}");
        }
    }
}
