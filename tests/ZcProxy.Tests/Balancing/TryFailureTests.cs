using System.Net.Http;
using System.Net.Sockets;
using Yarp.ReverseProxy.Forwarder;
using ZcProxy.Core.Balancing;
using ZcProxy.Core.Forwarding;

namespace ZcProxy.Tests.Balancing;

/// <summary>
/// How either forwarder's IForwarderErrorFeature reads as a TryFailure. YARP's shapes are those SocketsHttpHandler
/// produces (the functional tests in RetryTests and DefaultsTests prove them against real sockets).
/// </summary>
public class TryFailureTests
{
    private sealed class YarpError(ForwarderError error, Exception? exception) : IForwarderErrorFeature
    {
        public ForwarderError Error { get; } = error;
        public Exception? Exception { get; } = exception;
    }

    [Fact]
    public void ZeroCopy_NothingSent_IsNotConnected_OrConnectTimedOut()
    {
        var refused = new SocketException((int)SocketError.ConnectionRefused);
        Assert.Equal(TryFailure.NotConnected, TryFailures.Classify(new ZeroCopyForwarderErrorFeature(ForwarderError.Request, refused) { RequestSent = false }));
        Assert.Equal(TryFailure.ConnectTimedOut, TryFailures.Classify(new ZeroCopyForwarderErrorFeature(ForwarderError.Request, new TimeoutException()) { RequestSent = false }));
        // A reset before any byte of the head was accepted (a send that failed at once).
        var reset = new SocketException((int)SocketError.ConnectionReset);
        Assert.Equal(TryFailure.NotConnected, TryFailures.Classify(new ZeroCopyForwarderErrorFeature(ForwarderError.Request, reset) { RequestSent = false }));
    }

    [Fact]
    public void ZeroCopy_SomethingSent_IsAfterSending_OrHeadTimedOut()
    {
        var reset = new SocketException((int)SocketError.ConnectionReset);
        Assert.Equal(TryFailure.AfterSending, TryFailures.Classify(new ZeroCopyForwarderErrorFeature(ForwarderError.Request, reset)));
        Assert.Equal(TryFailure.HeadTimedOut, TryFailures.Classify(new ZeroCopyForwarderErrorFeature(ForwarderError.RequestTimedOut, new TimeoutException())));
        Assert.Equal(TryFailure.Other, TryFailures.Classify(new ZeroCopyForwarderErrorFeature(ForwarderError.ResponseBodyDestination, reset)));
    }

    [Fact]
    public void Yarp_ConnectionError_IsNotConnected_ACancellationByTimeoutException_IsConnectTimedOut()
    {
        var refused = new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused (127.0.0.1:1)", new SocketException((int)SocketError.ConnectionRefused));
        Assert.Equal(TryFailure.NotConnected, TryFailures.Classify(new YarpError(ForwarderError.Request, refused)));
        var connectTimeout = new TaskCanceledException("canceled", new TimeoutException("A connection could not be established within the configured ConnectTimeout."));
        Assert.Equal(TryFailure.ConnectTimedOut, TryFailures.Classify(new YarpError(ForwarderError.RequestTimedOut, connectTimeout)));
    }

    [Fact]
    public void Yarp_OtherRequestErrors_AreAfterSending_AnActivityTimeoutIsHeadTimedOut()
    {
        var ended = new HttpRequestException(HttpRequestError.ResponseEnded, "The response ended prematurely.");
        Assert.Equal(TryFailure.AfterSending, TryFailures.Classify(new YarpError(ForwarderError.Request, ended)));
        Assert.Equal(TryFailure.HeadTimedOut, TryFailures.Classify(new YarpError(ForwarderError.RequestTimedOut, new TaskCanceledException())));
        Assert.Equal(TryFailure.Other, TryFailures.Classify(new YarpError(ForwarderError.RequestBodyClient, new IOException())));
        Assert.Equal(TryFailure.None, TryFailures.Classify(null));
    }
}
