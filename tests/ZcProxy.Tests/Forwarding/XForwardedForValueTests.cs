using System.Net;
using Microsoft.Extensions.Primitives;
using ZcProxy.Core.Forwarding;

namespace ZcProxy.Tests.Forwarding;

/// <summary>The X-Forwarded-For value both forwarders send: the client's values, then the peer (nginx's $proxy_add_x_forwarded_for).</summary>
public class XForwardedForValueTests
{
    [Fact]
    public void ThePeerIsAppended_ToEveryValueTheClientSent_InOrder()
    {
        var peer = IPAddress.Parse("192.0.2.1");
        Assert.Equal("192.0.2.1", XForwardedForAppend.Value(StringValues.Empty, peer));
        Assert.Equal("203.0.113.7, 192.0.2.1", XForwardedForAppend.Value("203.0.113.7", peer));
        Assert.Equal("10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.1", XForwardedForAppend.Value(new StringValues(["10.0.0.1, 10.0.0.2", " 10.0.0.3 "]), peer));
        Assert.Equal("192.0.2.1", XForwardedForAppend.Value(new StringValues(["", " "]), peer)); // empty fields add nothing
    }

    [Fact]
    public void AnIPv4MappedPeer_IsWrittenAsIPv4_AnIPv6OneAsItIs_NoPeerKeepsTheClientsValue()
    {
        Assert.Equal("a, 192.0.2.1", XForwardedForAppend.Value("a", IPAddress.Parse("::ffff:192.0.2.1")));
        Assert.Equal("2001:db8::1", XForwardedForAppend.Value(StringValues.Empty, IPAddress.Parse("2001:db8::1")));
        Assert.Equal("a", XForwardedForAppend.Value("a", null));
        Assert.Null(XForwardedForAppend.Value(StringValues.Empty, null));
    }
}
