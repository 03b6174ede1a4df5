using System.Net;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Balancing;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.StreamProxy;

/// <summary>
/// The upstream side of a stream connection: the connected socket and the destination it counts against (a connection
/// slot of its MaxConnections and one of the requests in flight the policies balance on) until <see cref="Release"/>.
/// </summary>
/// <param name="countedOn">The stripe its in-flight count went to (<see cref="DestinationRuntime.BeginRequest"/>).</param>
internal sealed class StreamUpstream(DestinationState destination, DestinationRuntime runtime, ConnectedSocket socket, IPEndPoint endPoint, TimeSpan connectTime,
    int countedOn)
{
    private int _released;

    public DestinationState Destination { get; } = destination;
    public ConnectedSocket Socket { get; } = socket;
    public IPEndPoint EndPoint { get; } = endPoint;
    public TimeSpan ConnectTime { get; } = connectTime;

    /// <summary>
    /// Gives back the slot and the in-flight count (once); the socket is the session's to close. The connect time stands
    /// for the try's latency on the status page: a connection's length says nothing about the destination's speed.
    /// </summary>
    public void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        runtime.EndRequest(ConnectTime, countedOn);
        runtime.Slots.Exit();
    }
}

/// <summary>What connecting a stream's client to its cluster gave: an upstream, or how it failed and why (for the log).</summary>
internal readonly record struct StreamConnectResult(StreamUpstream? Upstream, StreamEnd Failure, string Reason, int Tries)
{
    public static StreamConnectResult Connected(StreamUpstream upstream, int tries) => new(upstream, StreamEnd.Done, "", tries);
    public static StreamConnectResult Failed(StreamEnd failure, string reason, int tries) => new(null, failure, reason, tries);
}
