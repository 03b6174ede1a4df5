using System.Net.Sockets;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Core.Transport.Relay;
using ZcProxy.Tests.StreamProxy;

namespace ZcProxy.Tests.Transport.Relay;

/// <summary>
/// Relays lease from a pipe pool of their own (the shipped budget: a quarter of the pipe quota in 256 KiB pipes), so
/// more directions splice at once than the 48 the shared 1 MiB body pool allowed; every pipe is back once they end.
/// </summary>
[Collection(FdCountCollection.Name)]
public sealed class RelayPipePoolTests
{
    /// <summary>60 directions: more than the 48 pipes relays could hold when they shared the body pool.</summary>
    private const int Relays = 30;
    private const long Size = 1 << 20;
    /// <summary>Small socket buffers: the bytes a stalled peer does not read pile up in the relay's pipe, which it then holds.</summary>
    private const int SocketBuffer = 32 * 1024;

    [Fact]
    public async Task SixtyDirectionsHoldARelayPipeAtOnce_AllByteExact_ThenTheFdsAreBackAtTheirBaseline()
    {
        var budget = PipeBudget.ForRelays(PipeBudget.DefaultRelayPipeSize);
        Assert.True(budget.MaxPipes >= 2 * Relays, $"the relay pool allows {budget.MaxPipes} pipes ({budget.Basis})");
        int before = FdCount.Count();
        var metrics = new ProxyMetrics();
        var sockets = new List<Socket>();
        using (var loop = new EventLoop(0))
        using (var pipes = new SplicePipePool(budget, metrics, use: SplicePipeUse.Relays))
        {
            try
            {
                var read = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var relays = new List<Task<RelayEnd>>();
                var peers = new List<Task<(long, string)>>();
                for (int i = 0; i < Relays; i++)
                {
                    var (client, clientEnd) = await LoopbackPair.ConnectAsync();
                    var (upstream, upstreamEnd) = await LoopbackPair.ConnectAsync();
                    foreach (var socket in new[] { client, clientEnd, upstream, upstreamEnd })
                    {
                        socket.SendBufferSize = SocketBuffer;
                        socket.ReceiveBufferSize = SocketBuffer;
                        sockets.Add(socket);
                    }
                    var relay = new SpliceRelay(loop.Register(clientEnd.SafeHandle), loop.Register(upstreamEnd.SafeHandle), pipes, metrics, TimeSpan.FromMinutes(1));
                    relays.Add(relay.RunAsync());
                    peers.Add(SendThenReceiveAsync(client, read.Task));
                    peers.Add(SendThenReceiveAsync(upstream, read.Task));
                }
                // Nobody reads yet: every direction's pipe holds bytes its sink cannot take.
                await Poll.UntilAsync(() => pipes.Leased == 2 * Relays, $"all {2 * Relays} directions to hold a pipe (now {pipes.Leased})");
                read.SetResult();

                foreach (var received in peers) Assert.Equal((Size, BodyPattern.Sha256(Size)), await received.WaitAsync(TimeSpan.FromSeconds(60)));
                foreach (var end in relays) Assert.Equal(RelayEnd.Completed, await end.WaitAsync(TimeSpan.FromSeconds(60)));
                Assert.Equal(Relays * Size, metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Request));
                Assert.Equal(Relays * Size, metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response));
                Assert.Equal(0, metrics.GetBodyBytes(BodyMechanism.Copy, BodyDirection.Request) + metrics.GetBodyBytes(BodyMechanism.Copy, BodyDirection.Response));
                Assert.Equal(0, metrics.CounterValue("zcproxy_relay_pipe_shortages_total"));
                Assert.Equal(0, pipes.Leased);
            }
            finally
            {
                foreach (var socket in sockets) socket.Dispose();
            }
        }
        // The pool closed its idle pipes, the loop its epoll and eventfd; the sockets are closed.
        await Poll.UntilAsync(() => FdCount.Count() <= before, $"socket/pipe/epoll fd count back to {before} (now {FdCount.Count()}: {FdCount.Describe()})", TimeSpan.FromSeconds(15));
    }

    /// <summary>Sends the pattern and its FIN at once, reads what comes back once <paramref name="read"/> completes.</summary>
    private static async Task<(long, string)> SendThenReceiveAsync(Socket socket, Task read)
    {
        var sending = Task.Run(async () =>
        {
            await StreamWire.SendPatternAsync(socket, Size);
            socket.Shutdown(SocketShutdown.Send);
        });
        await read;
        var received = await StreamWire.ReceiveAllAsync(socket);
        await sending;
        return received;
    }
}
