using Yarp.ReverseProxy.Forwarder;
using ZcProxy.Core.Forwarding;

namespace ZcProxy.Tests.Forwarding;

/// <summary>A client that leaves mid-exchange is logged at Debug (as YARP does), anything else the forwarder fails on at Warning.</summary>
public class ClientGoneLogLevelTests
{
    [Theory]
    [InlineData(ForwarderError.RequestCanceled)]
    [InlineData(ForwarderError.RequestBodyCanceled)]
    [InlineData(ForwarderError.ResponseBodyCanceled)]
    [InlineData(ForwarderError.UpgradeRequestCanceled)]
    [InlineData(ForwarderError.UpgradeResponseCanceled)]
    public void ClientSideCancellations_OfAnAbortedRequest_AreTheClientGone(ForwarderError error)
    {
        Assert.True(ZeroCopyForwarder.IsClientGone(error, requestAborted: true));
        // The same error without the request aborted is something else failing: it stays a warning.
        Assert.False(ZeroCopyForwarder.IsClientGone(error, requestAborted: false));
    }

    [Theory]
    [InlineData(ForwarderError.Request)]
    [InlineData(ForwarderError.RequestTimedOut)]
    [InlineData(ForwarderError.ResponseHeaders)]
    [InlineData(ForwarderError.RequestBodyClient)]
    public void UpstreamAndProxyFailures_StayWarnings_EvenWhenTheClientLeftToo(ForwarderError error)
    {
        Assert.False(ZeroCopyForwarder.IsClientGone(error, requestAborted: true));
    }
}
