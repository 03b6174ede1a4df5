using Yarp.ReverseProxy.Forwarder;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// The zero-copy forwarder reports failures exactly as YARP's forwarder does (YARP's own implementation is
/// internal), so passive health checks and UpstreamTimingStep see both paths alike.
/// </summary>
internal sealed class ZeroCopyForwarderErrorFeature(ForwarderError error, Exception? exception) : IForwarderErrorFeature
{
    public ForwarderError Error { get; } = error;
    public Exception? Exception { get; } = exception;

    /// <summary>False when no byte of the request reached the destination (connect failed, nothing accepted): safe to send elsewhere.</summary>
    public bool RequestSent { get; init; } = true;
}
