using System.Net;
using System.Net.Sockets;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Core.Transport.Relay;
using ZcProxy.Tests.StreamProxy;
using ZcProxy.Native;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Transport.Relay;

/// <summary>The relay on its own: two loopback connections, the proxy's ends registered with one event loop.</summary>
public sealed class SpliceRelayTests
{
    private static async Task<(RelayEnd End, (long, string) AtClient, (long, string) AtUpstream, ProxyMetrics Metrics)> ExchangeAsync(
        SplicePipePool pipes, long size, EventLoop? on = null)
    {
        using var owned = on is null ? new EventLoop(0) : null;
        var loop = on ?? owned!;
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

    /// <summary>
    /// A relay whose peers read as fast as it splices never finds a source empty or a sink full, so without a cap it held
    /// its loop for the whole transfer (up to 14 MB in one loop iteration at 256 MiB, docs/transport.md): each direction
    /// splices at most LoopTurn.Bytes into its sink per loop turn, then yields the loop. Counted on this test's own loop:
    /// every turn it ended moved at most one share, byte-exact both ways.
    /// </summary>
    [Fact]
    public async Task AFastTransfer_SplicesAtMostOneShareOfTheLoopPerTurn()
    {
        long size = 6 * LoopTurn.Bytes + 12345;
        using var loop = new EventLoop(0);
        IReadOnlyCollection<long> turns;
        using (var recorded = new RecordedTurns(onlyWhere: () => loop.IsLoopThread))
        {
            using var pipes = new SplicePipePool(new PipeBudget(256 * 1024, 2, "test"));
            var (end, atClient, atUpstream, metrics) = await ExchangeAsync(pipes, size, loop);
            Assert.Equal(RelayEnd.Completed, end);
            Assert.Equal((size, BodyPattern.Sha256(size)), atClient);
            Assert.Equal((size, BodyPattern.Sha256(size)), atUpstream);
            Assert.Equal(size, metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Request));
            Assert.Equal(size, metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response));
            turns = recorded.Bytes;
        }
        Assert.NotEmpty(turns);
        Assert.All(turns, bytes => Assert.InRange(bytes, 1, LoopTurn.Bytes));
    }

    /// <summary>
    /// A turn's end used to fall in mid-pipe: the drain that reached the turn's share was cut short and the next turn
    /// topped the pipe up first, two splices each way for one pipe's bytes at every turn (a 16 MiB body: 48 splices where
    /// 34 do). Now a direction about to fill an empty pipe that the turn could not drain whole ends the turn first. Counted
    /// on this test's own loop: no splice into a sink was cut short by its turn; byte-exact both ways.
    /// </summary>
    [Fact]
    public async Task AFastTransfer_EndsItsTurnsBetweenPipes_NotInOne()
    {
        long size = 8 * LoopTurn.Bytes + 12345;
        using var loop = new EventLoop(0);
        var cuts = new System.Collections.Concurrent.ConcurrentQueue<(long Wanted, long Allowed)>();
        Action<long, long> record = (wanted, allowed) => { if (loop.IsLoopThread) cuts.Enqueue((wanted, allowed)); };
        IReadOnlyCollection<long> turns;
        LoopTurn.Cut += record;
        try
        {
            using var recorded = new RecordedTurns(onlyWhere: () => loop.IsLoopThread);
            using var pipes = new SplicePipePool(new PipeBudget(1 << 20, 2, "test"));
            var (end, atClient, atUpstream, metrics) = await ExchangeAsync(pipes, size, loop);
            Assert.Equal(RelayEnd.Completed, end);
            Assert.Equal((size, BodyPattern.Sha256(size)), atClient);
            Assert.Equal((size, BodyPattern.Sha256(size)), atUpstream);
            Assert.Equal(size, metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Request));
            Assert.Equal(size, metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response));
            turns = recorded.Bytes;
        }
        finally { LoopTurn.Cut -= record; }
        Assert.Empty(cuts);
        Assert.All(turns, bytes => Assert.InRange(bytes, 1, LoopTurn.Bytes)); // the share still holds
    }

    /// <summary>
    /// The copy fallback (no pipe to be had) moved 64 KiB per round until its source was empty or its sink full, so a
    /// fast peer held the loop as the splices did before their cap: it copies at most LoopTurn.Bytes per turn too.
    /// </summary>
    [Fact]
    public async Task AFastCopiedTransfer_CopiesAtMostOneShareOfTheLoopPerTurn()
    {
        long size = 6 * LoopTurn.Bytes + 12345;
        using var loop = new EventLoop(0);
        IReadOnlyCollection<long> turns;
        using (var recorded = new RecordedTurns(onlyWhere: () => loop.IsLoopThread))
        {
            using var pipes = new SplicePipePool(new PipeBudget(1 << 20, 0, "none: every lease fails"));
            var (end, atClient, atUpstream, metrics) = await ExchangeAsync(pipes, size, loop);
            Assert.Equal(RelayEnd.Completed, end);
            Assert.Equal((size, BodyPattern.Sha256(size)), atClient);
            Assert.Equal((size, BodyPattern.Sha256(size)), atUpstream);
            Assert.Equal(size, metrics.GetBodyBytes(BodyMechanism.Copy, BodyDirection.Request));
            Assert.Equal(size, metrics.GetBodyBytes(BodyMechanism.Copy, BodyDirection.Response));
            turns = recorded.Bytes;
        }
        Assert.NotEmpty(turns);
        Assert.All(turns, bytes => Assert.InRange(bytes, 1, LoopTurn.Bytes));
    }

    /// <summary>
    /// A direction that moved PipeBudget.GrowAfterBytes grows its pipe (the kernel reports the grown size on the leased
    /// pipe); a short relay's pipes keep the pool's size; every pipe comes back at the pool's size.
    /// </summary>
    [Theory]
    [InlineData(16L << 20, true)]
    [InlineData(1L << 20, false)]
    public async Task ALongRelaysPipeGrows_AShortOnesDoesNot(long size, bool grows)
    {
        const int Base = 256 * 1024, Grown = 1 << 20;
        var grownTo = new System.Collections.Concurrent.ConcurrentQueue<int>();
        var poolMetrics = new ProxyMetrics();
        using var pipes = new SplicePipePool(new PipeBudget(Base, 4, "test") { GrowSize = Grown, MaxGrown = 2 }, poolMetrics, use: SplicePipeUse.Relays,
            resizePipe: (pipe, bytes) =>
            {
                bool resized = pipe.TryResize(bytes);
                if (resized && bytes > Base) grownTo.Enqueue(pipe.KernelCapacity());
                return resized;
            });
        var (end, atClient, atUpstream, metrics) = await ExchangeAsync(pipes, size);

        Assert.Equal(RelayEnd.Completed, end);
        Assert.Equal((size, BodyPattern.Sha256(size)), atClient);
        Assert.Equal((size, BodyPattern.Sha256(size)), atUpstream);
        Assert.Equal(size, metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Request));
        Assert.Equal(size, metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response));
        if (grows)
        {
            // Both directions passed 4 MiB with a pipe in hand.
            Assert.True(grownTo.Count >= 2, $"{grownTo.Count} growths");
            Assert.All(grownTo, capacity => Assert.Equal(Grown, capacity));
        }
        else Assert.Empty(grownTo);
        Assert.Equal(grownTo.Count, poolMetrics.CounterValue("zcproxy_relay_pipe_growths_total"));
        // Every pipe is back: grown ones idle and still grown (for the next long transfer), the others at the pool's size.
        Assert.Equal((grownTo.Count, 0), (pipes.Grown, pipes.Leased));
        var idle = new List<SplicePipe>();
        while (pipes.IdleCount > 0) idle.Add(pipes.TryLease(grown: true)!);
        Assert.NotEmpty(idle);
        Assert.Equal(grownTo.Count, idle.Count(pipe => (pipe.Capacity, pipe.KernelCapacity()) == (Grown, Grown)));
        Assert.All(idle.Where(pipe => pipe.Capacity != Grown), pipe => Assert.Equal((Base, Base), (pipe.Capacity, pipe.KernelCapacity())));
        foreach (var pipe in idle) pipes.Return(pipe, transferComplete: true);
    }

    /// <summary>
    /// A long direction whose source runs dry again and again (a sender in bursts) leases a pipe per burst. Its pipe
    /// used to be grown on each lease and shrunk on each return (two F_SETPIPE_SZ per burst); now it grows once and the
    /// grown pipe waits in the pool for the direction's next lease. Counted as calls of the pool's resize.
    /// </summary>
    [Fact]
    public async Task ALongDirectionInBursts_GrowsItsPipeOnce_NotPerLease()
    {
        const int Base = 256 * 1024, Grown = 1 << 20, Burst = 512 * 1024, Bursts = 8;
        long first = PipeBudget.GrowAfterBytes + Base, size = first + (long)Burst * Bursts;
        int resizes = 0;
        var poolMetrics = new ProxyMetrics();
        using var pipes = new SplicePipePool(new PipeBudget(Base, 4, "test") { GrowSize = Grown, MaxGrown = 2 }, poolMetrics, use: SplicePipeUse.Relays,
            resizePipe: (pipe, bytes) => { Interlocked.Increment(ref resizes); return pipe.TryResize(bytes); });
        using var loop = new EventLoop(0);
        var (client, clientEnd) = await LoopbackPair.ConnectAsync();
        var (upstream, upstreamEnd) = await LoopbackPair.ConnectAsync();
        using (client) using (clientEnd) using (upstream) using (upstreamEnd)
        {
            var relay = new SpliceRelay(loop.Register(clientEnd.SafeHandle), loop.Register(upstreamEnd.SafeHandle), pipes, new ProxyMetrics(), TimeSpan.FromMinutes(1));
            var running = relay.RunAsync();
            long received = 0;
            var atUpstream = Task.Run(async () =>
            {
                using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
                var buffer = new byte[256 * 1024];
                int n;
                while ((n = await upstream.ReceiveAsync(buffer, SocketFlags.None)) > 0)
                {
                    hash.AppendData(buffer, 0, n);
                    Interlocked.Add(ref received, n);
                }
                return Convert.ToHexString(hash.GetHashAndReset());
            });
            var body = new byte[size];
            BodyPattern.Fill(body, 0);
            long sent = 0;
            foreach (long piece in new[] { first }.Concat(Enumerable.Repeat((long)Burst, Bursts)))
            {
                await TcpOrigin.SendAllAsync(client, body.AsMemory((int)sent, (int)piece));
                sent += piece;
                // The relay delivers the burst and finds its source empty (it returns its pipe) before the next one.
                var deadline = DateTime.UtcNow.AddSeconds(30);
                while (Interlocked.Read(ref received) < sent && DateTime.UtcNow < deadline) await Task.Delay(2);
                Assert.Equal(sent, Interlocked.Read(ref received));
            }
            client.Shutdown(SocketShutdown.Send);
            Assert.Equal(BodyPattern.Sha256(size), await atUpstream.WaitAsync(TimeSpan.FromSeconds(30)));
            upstream.Shutdown(SocketShutdown.Send);
            Assert.Equal(RelayEnd.Completed, await running.WaitAsync(TimeSpan.FromSeconds(30)));
        }
        // One growth for the one long direction, nothing shrunk: the grown pipe served every later burst.
        Assert.Equal((1, 1L), (resizes, poolMetrics.CounterValue("zcproxy_relay_pipe_growths_total")));
        Assert.Equal((1, 0), (pipes.Grown, pipes.Leased));
    }

    /// <summary>A kernel that refuses to grow the pipe (the user's pipe quota): the long relay goes on through the pool's size, byte-exact.</summary>
    [Fact]
    public async Task GrowthRefused_TheLongRelayGoesOnAtThePoolsSize_ByteExact()
    {
        const long Size = 16L << 20;
        const int Base = 256 * 1024;
        var poolMetrics = new ProxyMetrics();
        using var pipes = new SplicePipePool(new PipeBudget(Base, 4, "test") { GrowSize = 1 << 20, MaxGrown = 2 }, poolMetrics, use: SplicePipeUse.Relays,
            resizePipe: (pipe, bytes) => bytes <= Base && pipe.TryResize(bytes));
        var (end, atClient, atUpstream, metrics) = await ExchangeAsync(pipes, Size);

        Assert.Equal(RelayEnd.Completed, end);
        Assert.Equal((Size, BodyPattern.Sha256(Size)), atClient);
        Assert.Equal((Size, BodyPattern.Sha256(Size)), atUpstream);
        Assert.Equal(Size, metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Request));
        Assert.Equal(Size, metrics.GetBodyBytes(BodyMechanism.Splice, BodyDirection.Response));
        Assert.Equal(0, poolMetrics.CounterValue("zcproxy_relay_pipe_growths_total"));
        Assert.True(poolMetrics.CounterValue("zcproxy_relay_pipe_growths_refused_total") >= 2, "both directions asked to grow");
        Assert.Equal((0, 0), (pipes.Grown, pipes.Leased));
    }

    [Fact]
    public async Task WhileTheClientIsFull_TheUpstreamsDataDoesNotWakeTheLoop()
    {
        // The client reads nothing at first: the relay fills its pipe and waits for the client. The upstream keeps
        // sending meanwhile; each segment it lands on the proxy's upstream socket was a read event that woke the loop
        // for nothing (the relay cannot take it before the client takes bytes). Counted as the upstream socket's read
        // events (its read sequence), which must not move while the relay only waits for the client.
        using var loop = new EventLoop(0);
        var (client, clientEnd) = await LoopbackPair.ConnectAsync();
        var (upstream, upstreamEnd) = await SmallSegmentPairAsync();
        using (client) using (clientEnd) using (upstream) using (upstreamEnd)
        {
            client.ReceiveBufferSize = 16 * 1024;
            clientEnd.SendBufferSize = 16 * 1024;
            using var pipes = new SplicePipePool(new PipeBudget(PipeBudget.KernelDefaultPipeSize, 2, "test"));
            var clientSocket = loop.Register(clientEnd.SafeHandle);
            var upstreamSocket = loop.Register(upstreamEnd.SafeHandle);
            var relay = new SpliceRelay(clientSocket, upstreamSocket, pipes, new ProxyMetrics(), TimeSpan.FromMinutes(1));
            var running = relay.RunAsync();

            // Everything between the upstream and the client fills up: the upstream's sends would block.
            upstream.Blocking = false;
            var chunk = new byte[4096];
            long sent = 0;
            var filling = System.Diagnostics.Stopwatch.StartNew();
            while (filling.Elapsed < TimeSpan.FromSeconds(30))
            {
                try { sent += upstream.Send(chunk); }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock)
                {
                    // The relay may still be moving bytes: full means a send blocks after the relay had time to run.
                    await FenceAsync(client, upstream);
                    try { sent += upstream.Send(chunk); }
                    catch (SocketException again) when (again.SocketErrorCode == SocketError.WouldBlock) { break; }
                }
            }
            upstream.Blocking = true;
            int before = upstreamSocket.ReadSequence;

            // The client takes 256 KiB: the relay drains and tops its pipe up from the upstream socket, whose window opens,
            // so the upstream lands more segments, while the relay waits for the client.
            // The upstream has far more to send than the client takes, so the relay never finds its source empty.
            var topUp = Task.Run(() => upstream.Send(new byte[8 << 20]));
            var sink = new byte[256 * 1024];
            for (int got = 0; got < sink.Length;) got += await client.ReceiveAsync(sink.AsMemory(got));
            await FenceAsync(client, upstream);
            Assert.Equal(before, upstreamSocket.ReadSequence);

            relay.Stop(RelayEnd.Stopped);
            await running.WaitAsync(TimeSpan.FromSeconds(30));
            upstream.Close(0); // unblocks the top-up send
            await Task.WhenAny(topUp);
            Assert.True(sent > 0);
        }
    }

    /// <summary>
    /// A client that reads nothing while the upstream sends 16 MiB: with a low watermark the proxy's client socket holds
    /// at most about that many bytes unsent (SIOCOUTQNSD; the rest waits in the relay's pipe and at the upstream), so that
    /// the relay, not the client's ACKs, sends them; with 0 (the kernel's default) it takes up to its send buffer. Then the
    /// client reads everything: byte-exact, and the relay ends on both FINs.
    /// </summary>
    [Theory]
    [InlineData(64 * 1024)]
    [InlineData(0)]
    public async Task AClientThatReadsNothing_HoldsAtMostTheLowWatermarkUnsent_ThenGetsEveryByte(int lowWatermark)
    {
        const long Size = 16L << 20;
        // A socket may take one segment's worth (loopback: 64 KiB) past the watermark in the call that crosses it.
        const int Slack = 128 * 1024;
        using var loop = new EventLoop(0);
        var (client, clientEnd) = await LoopbackPair.ConnectAsync();
        var (upstream, upstreamEnd) = await LoopbackPair.ConnectAsync();
        using (client) using (clientEnd) using (upstream) using (upstreamEnd)
        {
            using var pipes = new SplicePipePool(new PipeBudget(PipeBudget.DefaultRelayPipeSize, 2, "test"));
            var relay = new SpliceRelay(loop.Register(clientEnd.SafeHandle), loop.Register(upstreamEnd.SafeHandle), pipes, new ProxyMetrics(),
                TimeSpan.FromMinutes(1), sendLowWatermark: lowWatermark);
            var running = relay.RunAsync();
            var sending = Task.Run(async () =>
            {
                await StreamWire.SendPatternAsync(upstream, Size);
                upstream.Shutdown(SocketShutdown.Send);
            });

            // The relay stalls once the client socket takes no more: what it delivered stops moving (three polls in a row).
            long seen = -1;
            int still = 0;
            await Poll.UntilAsync(() =>
            {
                long now = relay.ResponseBytes;
                still = now > 0 && now == seen ? still + 1 : 0;
                seen = now;
                return Task.FromResult(still >= 3);
            }, "the relay waits for the client");
            int unsent = Syscalls.BytesUnsent((int)clientEnd.SafeHandle.DangerousGetHandle());
            Assert.True(unsent >= 0, "SIOCOUTQNSD failed");
            if (lowWatermark > 0) Assert.InRange(unsent, 0, lowWatermark + Slack);
            else Assert.True(unsent > 4 * (64 * 1024 + Slack), $"{unsent} bytes unsent: the kernel's default should let the socket take its send buffer");

            var received = await StreamWire.ReceiveAllAsync(client).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal((Size, BodyPattern.Sha256(Size)), received);
            await sending.WaitAsync(TimeSpan.FromSeconds(30));
            client.Shutdown(SocketShutdown.Send);
            Assert.Equal(0, await upstream.ReceiveAsync(new byte[1].AsMemory()).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(RelayEnd.Completed, await running.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(Size, relay.ResponseBytes);
        }
    }

    /// <summary>
    /// A loopback pair with 1,400-byte segments (a network's, not loopback's 64 KiB): the receiver's window then opens
    /// as soon as the relay takes some bytes, and the sender lands many segments, as over a real network.
    /// </summary>
    private static async Task<(Socket Peer, Socket Proxy)> SmallSegmentPairAsync()
    {
        const int TcpMaxSegment = 2; // TCP_MAXSEG
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.SetRawSocketOption((int)ProtocolType.Tcp, TcpMaxSegment, BitConverter.GetBytes(1400));
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        peer.SetRawSocketOption((int)ProtocolType.Tcp, TcpMaxSegment, BitConverter.GetBytes(1400));
        await peer.ConnectAsync(listener.LocalEndPoint!);
        var proxy = await listener.AcceptAsync();
        proxy.Blocking = false;
        return (peer, proxy);
    }

    /// <summary>
    /// One byte client → upstream through the relay: when it arrives, the loop has handled every event queued before it
    /// (epoll reports ready fds in the order they became ready).
    /// </summary>
    private static async Task FenceAsync(Socket client, Socket upstream)
    {
        await client.SendAsync(new byte[] { 1 });
        var one = new byte[1];
        Assert.Equal(1, await upstream.ReceiveAsync(one.AsMemory()).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
    }
}
