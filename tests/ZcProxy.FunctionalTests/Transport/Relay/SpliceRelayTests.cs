using System.Net;
using System.Net.Sockets;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Core.Transport.Relay;
using ZcProxy.Tests.StreamProxy;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Transport.Relay;

/// <summary>The relay on its own: two loopback connections, the proxy's ends registered with one event loop.</summary>
public sealed class SpliceRelayTests
{
    private static async Task<(RelayEnd End, (long, string) AtClient, (long, string) AtUpstream, ProxyMetrics Metrics)> ExchangeAsync(
        SplicePipePool pipes, long size)
    {
        using var loop = new EventLoop(0);
        var (client, clientEnd) = await LoopbackPair.ConnectAsync();
        var (upstream, upstreamEnd) = await LoopbackPair.ConnectAsync();
        using (client) using (clientEnd) using (upstream) using (upstreamEnd)
        {
            var metrics = new ProxyMetrics();
            var relay = new SpliceRelay(loop.Register(clientEnd.SafeHandle), loop.Register(upstreamEnd.SafeHandle), pipes, metrics, TimeSpan.FromMinutes(1));
            var running = relay.RunAsync();
            var atUpstream = Task.Run(() => StreamWire.ExchangeAsync(upstream, size));
            var atClient = await StreamWire.ExchangeAsync(client, size);
            var end = await running.WaitAsync(TimeSpan.FromSeconds(60));
            return (end, atClient, await atUpstream, metrics);
        }
    }

    [Fact]
    public async Task NoPipeToBeHad_TheRelayCopies_BothWays_ByteExact()
    {
        const long Size = 4 << 20;
        using var pipes = new SplicePipePool(new PipeBudget(1 << 20, 0, "none: every lease fails"));
        var (end, atClient, atUpstream, metrics) = await ExchangeAsync(pipes, Size);

        Assert.Equal(RelayEnd.Completed, end);
        Assert.Equal((Size, BodyPattern.Sha256(Size)), atClient);
        Assert.Equal((Size, BodyPattern.Sha256(Size)), atUpstream);
        Assert.Equal(Size, metrics.GetBodyBytes(BodyMechanism.Copy, BodyDirection.Request));
        Assert.Equal(Size, metrics.GetBodyBytes(BodyMechanism.Copy, BodyDirection.Response));
        Assert.Equal(0, metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Request) + metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response));
    }

    [Fact]
    public async Task OnePipeForTwoDirections_EachSplicesOrCopies_NothingLostOrDoubled()
    {
        const long Size = 8 << 20;
        using var pipes = new SplicePipePool(new PipeBudget(1 << 20, 1, "one pipe"));
        var (end, atClient, atUpstream, metrics) = await ExchangeAsync(pipes, Size);

        Assert.Equal(RelayEnd.Completed, end);
        Assert.Equal((Size, BodyPattern.Sha256(Size)), atClient);
        Assert.Equal((Size, BodyPattern.Sha256(Size)), atUpstream);
        Assert.Equal(Size, metrics.GetBodyBytes(BodyMechanism.Copy, BodyDirection.Request) + metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Request));
        Assert.Equal(Size, metrics.GetBodyBytes(BodyMechanism.Copy, BodyDirection.Response) + metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response));
        Assert.True(metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Request) + metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response) > 0);
        Assert.Equal(0, pipes.Leased);
    }
}
