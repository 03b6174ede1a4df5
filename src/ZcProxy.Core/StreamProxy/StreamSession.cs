using System.Diagnostics;
using System.Globalization;
using System.Text;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Core.Transport.Relay;
using ZcProxy.Native;

namespace ZcProxy.Core.StreamProxy;

/// <summary>
/// One client connection of a stream, on one event loop from start to end: register the client socket, connect an
/// upstream (<see cref="StreamBalancer"/>), send the PROXY header if configured, relay both ways
/// (<see cref="SpliceRelay"/>), then close both sockets (a reset towards the side that did not fail, so a broken
/// connection never looks like a clean end), give the destination's slot back, count, and write one access-log line.
/// A cluster with no healthy destination closes the client at once.
/// </summary>
internal sealed class StreamSession(StreamProxyService proxy, string stream, StreamOptions settings, AcceptedSocket client, EventLoop loop)
{
    private SpliceRelay? _relay;

    /// <summary>Ends the session as soon as possible (proxy shutdown after the drain timeout).</summary>
    public void Abort() => Volatile.Read(ref _relay)?.Stop(RelayEnd.Stopped);

    public async Task RunAsync(CancellationToken aborted)
    {
        long started = Stopwatch.GetTimestamp();
        var startedAt = DateTimeOffset.Now;
        var counters = proxy.Metrics.For(stream);
        counters.Opened();
        LoopSocket? clientSocket = null;
        StreamUpstream? upstream = null;
        var end = StreamEnd.Stopped;
        string? reason = null;
        long requestBytes = 0, responseBytes = 0;
        try
        {
            await loop.SwitchTo();
            clientSocket = loop.Register(client.Handle);
            var connect = await proxy.Balancer.ConnectAsync(stream, settings.ClusterId, loop, client.Peer, counters, aborted);
            if (connect.Upstream is null)
            {
                end = connect.Failure;
                reason = connect.Reason;
                return;
            }
            upstream = connect.Upstream;
            var relay = new SpliceRelay(clientSocket, upstream.Socket.Socket, proxy.Pipes, proxy.ProxyMetrics, settings.IdleTimeout, counters.Relayed,
                proxy.RelaySendLowWatermark);
            Volatile.Write(ref _relay, relay);
            if (aborted.IsCancellationRequested) relay.Stop(RelayEnd.Stopped); // Abort ran before the relay existed
            proxy.Sweeper.Watch(relay);
            try
            {
                var relayEnd = await relay.RunAsync(preamble: ProxyProtocolHeader.Build(settings.ProxyProtocol, client.Peer, client.Local));
                end = StreamEnds.From(relayEnd);
                reason = relay.Failure;
            }
            finally
            {
                proxy.Sweeper.Forget(relay);
                requestBytes = relay.RequestBytes;
                responseBytes = relay.ResponseBytes;
            }
        }
        catch (Exception e)
        {
            end = StreamEnd.Stopped;
            reason = e.Message;
        }
        finally
        {
            Close(clientSocket, client.Handle, reset: end is StreamEnd.UpstreamError);
            if (upstream is not null)
            {
                Close(upstream.Socket.Socket, upstream.Socket.Handle, reset: end is StreamEnd.ClientError);
                upstream.Release();
            }
            counters.Closed(end);
            proxy.Ended(stream, client.Peer, upstream, end, reason);
            proxy.AccessLog(() => Format(startedAt, Stopwatch.GetElapsedTime(started), upstream, end, requestBytes, responseBytes));
        }
    }

    private static void Close(LoopSocket? registration, FileDescriptor handle, bool reset)
    {
        if (registration is not null) registration.Loop.Unregister(registration, fdStaysOpen: false);
        if (reset && FdLease.TryAcquire(handle, out var lease)) using (lease) Syscalls.SetLingerZero(lease.Fd);
        handle.Dispose(); // close(2): FIN, or RST after SO_LINGER 0
    }

    /// <summary>
    /// <c>127.0.0.1:50312 [02/Dec/2026:07:04:00 +0000] stream=pg upstream=10.0.0.5:5432 end=done request_bytes=512
    /// response_bytes=9120 duration=1.204 connect=0.001</c> (request = client to upstream, as in zcproxy_body_bytes_total).
    /// </summary>
    private string Format(DateTimeOffset startedAt, TimeSpan duration, StreamUpstream? upstream, StreamEnd end, long requestBytes, long responseBytes)
    {
        var sb = new StringBuilder(192);
        sb.Append(client.Peer?.ToString() ?? "-").Append(" [")
          .Append(startedAt.ToString("dd/MMM/yyyy:HH:mm:ss zzz", CultureInfo.InvariantCulture).Remove(24, 1)).Append("] stream=")
          .Append(stream).Append(" upstream=").Append(upstream?.EndPoint.ToString() ?? "-")
          .Append(" end=").Append(StreamEnds.Label(end))
          .Append(" request_bytes=").Append(requestBytes.ToString(CultureInfo.InvariantCulture))
          .Append(" response_bytes=").Append(responseBytes.ToString(CultureInfo.InvariantCulture))
          .Append(" duration=").Append(duration.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture))
          .Append(" connect=").Append(upstream?.ConnectTime.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture) ?? "-");
        return sb.ToString();
    }
}
