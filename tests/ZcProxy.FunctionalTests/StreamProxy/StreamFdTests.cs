using System.Net.Sockets;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Core.Transport.Relay;
using ZcProxy.Tests.Transport;

namespace ZcProxy.Tests.StreamProxy;

/// <summary>Stream connections, ended every way they can end, leave no fd, loop registration or idle watch behind.</summary>
[Collection(FdCountCollection.Name)]
public sealed class StreamFdTests
{
    [Fact]
    public async Task EveryWayAStreamEnds_LeavesTheFdsAtTheirBaseline()
    {
        await using var origin = TcpOrigin.Start(async (socket, o) =>
        {
            var mode = (char)(await TcpOrigin.ReceiveExactlyAsync(socket, 1, o.Stopping))[0];
            switch (mode)
            {
                case 'x': // 1 MiB each way
                    var receiving = StreamWire.ReceiveAllAsync(socket, o.Stopping);
                    await StreamWire.SendPatternAsync(socket, 1 << 20, o.Stopping);
                    socket.Shutdown(SocketShutdown.Send);
                    await receiving;
                    break;
                case 'f': // floods until the proxy resets it
                    while (true) await StreamWire.SendPatternAsync(socket, 1 << 20, o.Stopping);
                case 'r': // resets the connection
                    socket.LingerState = new LingerOption(true, 0);
                    socket.Close();
                    break;
                default: // stays silent until the client's end
                    await StreamWire.ReceiveAllAsync(socket, o.Stopping);
                    break;
            }
        });
        using var dead = new ReservedPort(); // refuses, and no other process's server takes the port meanwhile
        await using var rig = await StreamRig.StartAsync("""
            "s": { "Listen": "127.0.0.1:0", "ClusterId": "c" },
            "idle": { "Listen": "127.0.0.1:0", "ClusterId": "c", "IdleTimeout": "300ms" },
            "retry": { "Listen": "127.0.0.1:0", "ClusterId": "twice", "ProxyProtocol": "v1" }
            """, $"{StreamRig.Cluster("c", origin.Address)}, {StreamRig.ClusterWith("twice", """ "LoadBalancingPolicy": "FirstAlphabetical", "Metadata": { "MaxFails": 0 }, """, $"tcp://127.0.0.1:{dead.Port}", origin.Address)}");

        await RunScenarioAsync(rig); // warm-up: the first sockets, pipes, loop threads of this proxy
        int before = FdCount.Count();
        await RunScenarioAsync(rig);

        await Poll.UntilAsync(() => FdCount.Count() <= before, $"socket/pipe/epoll fd count back to {before} (now {FdCount.Count()}: {FdCount.Describe()})", TimeSpan.FromSeconds(15));
        Assert.Equal(0, rig.Proxy.Get<RelayIdleSweeper>().Count);
        // Only listening sockets stay registered: the HTTP listener and the three streams'.
        Assert.Equal(4, rig.Proxy.Get<EventLoops>().RegistrationCount);
    }

    private static async Task RunScenarioAsync(StreamRig rig)
    {
        long closedBefore = Closed(rig);
        using (var exchange = await rig.ConnectAsync("s"))
        {
            await TcpOrigin.SendAllAsync(exchange, "x"u8.ToArray());
            Assert.Equal(1 << 20, (await StreamWire.ExchangeAsync(exchange, 1 << 20)).Length);
        }
        using (var clientReset = await rig.ConnectAsync("s"))
        {
            await TcpOrigin.SendAllAsync(clientReset, "f"u8.ToArray());
            await TcpOrigin.ReceiveExactlyAsync(clientReset, 100_000);
            clientReset.LingerState = new LingerOption(true, 0);
        }
        using (var upstreamReset = await rig.ConnectAsync("s"))
        {
            await TcpOrigin.SendAllAsync(upstreamReset, "r"u8.ToArray());
            await Assert.ThrowsAnyAsync<SocketException>(async () => { while (await upstreamReset.ReceiveAsync(new byte[1024]) > 0) { } });
        }
        using (var idle = await rig.ConnectAsync("idle"))
        {
            await TcpOrigin.SendAllAsync(idle, "i"u8.ToArray());
            using var bounded = new CancellationTokenSource(Poll.DefaultTimeout);
            Assert.Equal(0, await idle.ReceiveAsync(new byte[16], SocketFlags.None, bounded.Token));
        }
        using (var retried = await rig.ConnectAsync("retry")) // the dead destination first, then the origin
        {
            await TcpOrigin.SendAllAsync(retried, "i"u8.ToArray());
            retried.Shutdown(SocketShutdown.Send);
            Assert.Equal(0, (await StreamWire.ReceiveAllAsync(retried)).Length);
        }
        await Poll.UntilAsync(() => Closed(rig) == closedBefore + 5 && rig.Streams.OpenConnections == 0, "every stream connection to end");
    }

    private static readonly string[] StreamNames = ["s", "idle", "retry"];
    private static readonly string[] Ends = ["done", "client_error", "upstream_error", "idle_timeout", "stopped"];

    private static long Closed(StreamRig rig) => StreamNames.Sum(s => Ends.Sum(r => rig.Closed(s, r)));
}
