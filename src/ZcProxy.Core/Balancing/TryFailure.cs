using System.Net.Http;
using Yarp.ReverseProxy.Forwarder;
using ZcProxy.Core.Forwarding;

namespace ZcProxy.Core.Balancing;

/// <summary>How a try failed, as far as repeating it on another destination is concerned (nginx proxy_next_upstream).</summary>
internal enum TryFailure
{
    /// <summary>No forwarding error.</summary>
    None,
    /// <summary>Connecting failed (refused, reset) or nothing of the request was accepted: the destination never saw it.</summary>
    NotConnected,
    /// <summary>Connecting timed out: the destination never saw the request.</summary>
    ConnectTimedOut,
    /// <summary>The destination failed after (part of) the request was sent, before the response head.</summary>
    AfterSending,
    /// <summary>No response head within the timeout after the request was sent.</summary>
    HeadTimedOut,
    /// <summary>Anything else (the client's doing, a failure after the response head): never retried.</summary>
    Other,
}

/// <summary>
/// The one place that reads what either forwarder reported through <see cref="IForwarderErrorFeature"/> as a
/// <see cref="TryFailure"/>. The zero-copy forwarder says whether any request byte was sent; YARP's forwarder (through
/// SocketsHttpHandler) reports a failed connect as an <see cref="HttpRequestException"/> with
/// <see cref="HttpRequestError.ConnectionError"/> and a connect timeout as a cancellation caused by a
/// <see cref="TimeoutException"/>.
/// </summary>
internal static class TryFailures
{
    public static TryFailure Classify(IForwarderErrorFeature? error)
    {
        if (error is null) return TryFailure.None;
        if (error is ZeroCopyForwarderErrorFeature { RequestSent: false } && error.Error == ForwarderError.Request)
            return error.Exception is TimeoutException ? TryFailure.ConnectTimedOut : TryFailure.NotConnected;
        return error.Error switch
        {
            ForwarderError.Request when Find<HttpRequestException>(error.Exception) is { HttpRequestError: HttpRequestError.ConnectionError } => TryFailure.NotConnected,
            ForwarderError.RequestTimedOut when error.Exception is OperationCanceledException && Find<TimeoutException>(error.Exception) is not null => TryFailure.ConnectTimedOut,
            ForwarderError.Request or ForwarderError.RequestBodyDestination or ForwarderError.ResponseHeaders => TryFailure.AfterSending,
            ForwarderError.RequestTimedOut => TryFailure.HeadTimedOut,
            _ => TryFailure.Other,
        };
    }

    private static T? Find<T>(Exception? exception) where T : Exception
    {
        for (var e = exception; e is not null; e = e.InnerException)
            if (e is T found) return found;
        return null;
    }
}
