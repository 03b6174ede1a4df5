using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Relay;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// An upgraded connection (WebSocket or any Upgrade but h2c) after the upstream's 101: the 101 head goes to the client
/// through Kestrel (IHttpUpgradeFeature), then the client socket and the upstream socket are spliced both ways
/// (<see cref="SpliceRelay"/>) until both sides finished, one fails, or nothing moved for the idle timeout (nginx
/// <c>proxy_read_timeout</c>, HAProxy <c>timeout tunnel</c>). Bytes already in user space go first: the client's read
/// past its request head, the upstream's read past the 101 head. A side that fails gets the other reset.
/// </summary>
internal sealed partial class UpgradeTunnel(RelayIdleSweeper sweeper, ForwardingMetrics metrics, ILogger<UpgradeTunnel> logger)
{
    /// <summary>False when Kestrel refused the upgrade (the response has not started: the caller answers it).</summary>
    /// <param name="sendLowWatermark">ZeroCopy.RelaySendLowWatermark (<see cref="SpliceRelay"/>).</param>
    public async Task<bool> RunAsync(HttpContext context, ZeroCopyConnection client, UpstreamConnection upstream, TimeSpan idleTimeout, long sendLowWatermark)
    {
        try { await context.Features.Get<IHttpUpgradeFeature>()!.UpgradeAsync(); } // the 101 head is in the kernel when this returns
        catch (Exception e) when (e is InvalidOperationException or IOException or OperationCanceledException)
        {
            upstream.Dispose();
            LogNotUpgraded(logger, e.Message);
            return false;
        }

        var fromUpstream = upstream.PrefetchedBody.ToArray();
        upstream.ReleasePrefetchedBody();
        if (upstream.Loop != client.Loop) upstream.MoveTo(client.Loop); // a relay's sockets share one loop
        var relay = new SpliceRelay(client.ClientSocket, upstream.Readiness!, client.Shared.RelayPipes, metrics.Body, idleTimeout,
            sendLowWatermark: sendLowWatermark);
        // Kestrel aborting the connection (the drain after SIGTERM ran out, a limit) stops the tunnel before it shuts the socket.
        var fromClient = client.StartTunnel(() => relay.Stop(RelayEnd.Stopped));
        sweeper.Watch(relay);
        RelayEnd end;
        try { end = await relay.RunAsync(fromClient, fromUpstream); }
        finally { sweeper.Forget(relay); }

        // A broken side resets the other, so that a truncated stream never looks finished.
        if (end == RelayEnd.ClientFailed) upstream.Socket.LingerState = new System.Net.Sockets.LingerOption(true, 0);
        upstream.Dispose();
        if (end == RelayEnd.UpstreamFailed) client.Abort(new IOException($"the upgraded upstream connection failed: {relay.Failure}"));
        metrics.Upgraded(end).Increment();
        var label = RelayEnds.Label(end);
        context.Features.Set(new UpgradedConnection(label, relay.RequestBytes, relay.ResponseBytes));
        LogTunnelEnded(logger, upstream.DestinationKey, label, relay.RequestBytes, relay.ResponseBytes, relay.Failure ?? "");
        return true;
    }

    [LoggerMessage(EventId = 3010, Level = LogLevel.Debug, Message = "upgraded connection to {Destination} ended ({End}): {RequestBytes} bytes to the upstream, {ResponseBytes} to the client {Reason}")]
    private static partial void LogTunnelEnded(ILogger logger, string destination, string end, long requestBytes, long responseBytes, string reason);

    [LoggerMessage(EventId = 3011, Level = LogLevel.Warning, Message = "the upstream agreed to upgrade but the client connection could not be: {Reason}")]
    private static partial void LogNotUpgraded(ILogger logger, string reason);
}
