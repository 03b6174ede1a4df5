using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using ZcProxy.Core.Output;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Output;

/// <summary>
/// The one splice loop on its own: two loopback connections, the proxy's ends registered with one event loop whose
/// clock is manual, so the idle timeouts are the loop's own deadlines (no timer, no CancellationTokenSource per wait).
/// </summary>
public sealed class SpliceMoveTests
{
    private static readonly TimeSpan Idle = TimeSpan.FromMinutes(10); // never reached in real time: only the manual clock passes it

    private sealed class TestEnds(LoopSocket source, LoopSocket sink) : SpliceEnds
    {
        private long _delivered;
        private int _waits, _lastWaitForSink;
        public long DeliveredBytes => Interlocked.Read(ref _delivered);
        /// <summary>Waits begun so far (each reads its idle timeout once).</summary>
        public int Waits => Volatile.Read(ref _waits);
        public bool LastWaitForSink => Volatile.Read(ref _lastWaitForSink) != 0;
        protected override bool ClientAborted => false;
        public override SafeHandle Source => source.Handle;
        public override SafeHandle Sink => sink.Handle;
        public override int SourceSequence => source.ReadSequence;
        protected override LoopSocket SinkSocket => sink;
        protected override LoopSocket SourceSocket() => source;
        protected override TimeSpan SourceIdle => Began(forSink: false);
        protected override TimeSpan SinkIdle => Began(forSink: true);

        private TimeSpan Began(bool forSink)
        {
            Volatile.Write(ref _lastWaitForSink, forSink ? 1 : 0);
            Interlocked.Increment(ref _waits);
            return Idle;
        }
        protected override BodyResult SourceStalled() => BodyResult.Failed(BodyOutcome.SourceTimedOut, "source idle");
        protected override BodyResult SinkStalled() => BodyResult.Failed(BodyOutcome.SinkFailed, "sink idle");
        public override BodyResult SourceFailed(string reason) => BodyResult.Failed(BodyOutcome.SourceFailed, reason);
        public override BodyResult SourceEnded(long left) => BodyResult.Failed(BodyOutcome.SourceEnded, $"{left} left");
        public override BodyResult SinkFailed(string reason) => BodyResult.Failed(BodyOutcome.SinkFailed, reason);
        public override BodyResult Cancelled() => BodyResult.Failed(BodyOutcome.ClientFailed, "cancelled");
        public override void Delivered(long bytes)
        {
            Interlocked.Add(ref _delivered, bytes);
            if (RecordFrames) AsyncFramesAtDelivery.Add(AsyncFrames.OfCore(typeof(TestEnds).Assembly, skipFrames: 1)); // from Delivered's caller
        }

        /// <summary>Set: each delivery records the async state machines of ZcProxy.Core on its stack (up to this test's).</summary>
        public bool RecordFrames { get; set; }
        public System.Collections.Concurrent.ConcurrentBag<string[]> AsyncFramesAtDelivery { get; } = [];
    }

    /// <summary>The loop, the two pairs and the ends; disposed together.</summary>
    private sealed class Bed : IDisposable
    {
        private readonly Socket _sourceEnd, _sinkEnd;

        private Bed(Socket sourcePeer, Socket sourceEnd, Socket sinkPeer, Socket sinkEnd)
        {
            Loop = new EventLoop(0, time: Clock);
            SourcePeer = sourcePeer;
            SinkPeer = sinkPeer;
            _sourceEnd = sourceEnd;
            _sinkEnd = sinkEnd;
            Ends = new TestEnds(Loop.Register(sourceEnd.SafeHandle), Loop.Register(sinkEnd.SafeHandle));
        }

        public ManualTimeProvider Clock { get; } = new();
        public EventLoop Loop { get; }
        public Socket SourcePeer { get; }
        public Socket SinkPeer { get; }
        public TestEnds Ends { get; }
        /// <summary>Bytes in the source socket's receive queue.</summary>
        public int SourceAvailable => _sourceEnd.Available;
        public SplicePipe Pipe { get; } = SplicePipe.Create(64 * 1024);

        public static async Task<Bed> StartAsync()
        {
            var (sourcePeer, sourceEnd) = await LoopbackPair.ConnectAsync();
            var (sinkPeer, sinkEnd) = await LoopbackPair.ConnectAsync();
            return new Bed(sourcePeer, sourceEnd, sinkPeer, sinkEnd);
        }

        /// <summary>Two round trips through the loop: the second runs after a whole iteration, deadline sweep included.</summary>
        public async Task SweptAsync()
        {
            for (int i = 0; i < 2; i++)
            {
                var ran = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                Loop.Post(static s => ((TaskCompletionSource)s!).SetResult(), ran);
                await ran.Task.WaitAsync(TimeSpan.FromSeconds(20));
            }
        }

        public void Dispose()
        {
            Loop.Dispose();
            SourcePeer.Dispose();
            SinkPeer.Dispose();
            _sourceEnd.Dispose();
            _sinkEnd.Dispose();
            Pipe.Dispose();
        }
    }

    [Fact]
    public async Task BodyArrivingInPieces_MovesExactly_AndLeavesNoDeadlineArmed()
    {
        const int Length = 3 << 20;
        using var bed = await Bed.StartAsync();
        var body = RandomNumberGenerator.GetBytes(Length);
        var moving = SpliceMove.RunAsync(bed.Ends, bed.Pipe, Length, CancellationToken.None).AsTask();
        var receiving = Task.Run(async () =>
        {
            var got = new byte[Length];
            for (int n = 0; n < Length;) n += await bed.SinkPeer.ReceiveAsync(got.AsMemory(n));
            return got;
        });
        // In pieces with pauses: the move waits for the source between them, each wait with its idle deadline.
        for (int offset = 0; offset < Length; offset += 256 * 1024)
        {
            await bed.SourcePeer.SendAsync(body.AsMemory(offset, 256 * 1024));
            await Task.Yield();
        }

        Assert.True((await moving.WaitAsync(TimeSpan.FromSeconds(60))).IsComplete);
        Assert.Equal(SHA256.HashData(body), SHA256.HashData(await receiving.WaitAsync(TimeSpan.FromSeconds(60))));
        Assert.Equal(Length, bed.Ends.DeliveredBytes);
        Assert.Equal(0, bed.Pipe.Buffered);
        Assert.Equal(0, bed.Loop.ArmedDeadlineCount);
    }

    /// <summary>
    /// A body that is in the source socket already and fits the sink moves without an async frame: the splices run in the
    /// caller's call, and the move continues in a (pooled) frame only once it must wait or yield. Before, the splice loop
    /// was one async method, a state machine per spliced 64 KiB response (~0.35 % of the proxy's samples).
    /// </summary>
    [Fact]
    public async Task BodyAlreadyThere_MovesWithoutAnAsyncFrame()
    {
        const int Length = 4096; // well inside a fresh loopback socket's send buffer: one splice each way
        using var bed = await Bed.StartAsync();
        var body = RandomNumberGenerator.GetBytes(Length);
        await bed.SourcePeer.SendAsync(body);
        await Poll.UntilAsync(() => bed.SourceAvailable == Length, "the body to reach the source socket");
        bed.Ends.RecordFrames = true;

        var moving = SpliceMove.RunAsync(bed.Ends, bed.Pipe, Length, CancellationToken.None);

        Assert.True(moving.IsCompleted);
        Assert.True((await moving).IsComplete);
        var got = new byte[Length];
        for (int n = 0; n < Length;) n += await bed.SinkPeer.ReceiveAsync(got.AsMemory(n));
        Assert.Equal(body, got);
        var frames = Assert.Single(bed.Ends.AsyncFramesAtDelivery);
        Assert.Empty(frames);
    }

    [Fact]
    public async Task SilentSource_TimesOut_WhenTheLoopsClockPassesTheIdleTimeout()
    {
        using var bed = await Bed.StartAsync();
        var moving = SpliceMove.RunAsync(bed.Ends, bed.Pipe, 1000, CancellationToken.None).AsTask();
        await Poll.UntilAsync(() => bed.Loop.ArmedDeadlineCount == 1, "the wait for the source to arm its deadline");

        bed.Clock.Advance(Idle - TimeSpan.FromSeconds(1));
        await bed.SweptAsync();
        Assert.False(moving.IsCompleted);

        bed.Clock.Advance(TimeSpan.FromSeconds(2));
        await bed.SweptAsync();
        var result = await moving.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(BodyResult.Failed(BodyOutcome.SourceTimedOut, "source idle"), result);
        Assert.Equal(0, bed.Loop.ArmedDeadlineCount);
    }

    [Fact]
    public async Task SinkTakingNothing_TimesOut_AsTheSinks()
    {
        const int Length = 64 << 20;
        using var bed = await Bed.StartAsync();
        var moving = SpliceMove.RunAsync(bed.Ends, bed.Pipe, Length, CancellationToken.None).AsTask();
        // The sink's peer never reads: its buffers fill, then the pipe; the move then waits for the sink.
        var sending = Task.Run(async () =>
        {
            var chunk = new byte[1 << 20];
            try { for (int i = 0; i < 64; i++) await bed.SourcePeer.SendAsync(chunk); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        });
        await Poll.UntilAsync(() =>
        {
            // No wait began between the reads, and the armed one is the sink's.
            int waits = bed.Ends.Waits;
            return bed.Ends.LastWaitForSink && bed.Loop.ArmedDeadlineCount == 1 && bed.Ends.Waits == waits;
        }, "the move to wait for a full sink");

        bed.Clock.Advance(Idle + TimeSpan.FromSeconds(1));
        await bed.SweptAsync();
        var result = await moving.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(BodyResult.Failed(BodyOutcome.SinkFailed, "sink idle"), result);
        Assert.Equal(0, bed.Loop.ArmedDeadlineCount);
        bed.SourcePeer.Dispose();
        await sending.WaitAsync(TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task Cancellation_WakesThePendingWait()
    {
        using var bed = await Bed.StartAsync();
        using var stop = new CancellationTokenSource();
        var moving = SpliceMove.RunAsync(bed.Ends, bed.Pipe, 1000, stop.Token).AsTask();
        await Poll.UntilAsync(() => bed.Loop.ArmedDeadlineCount == 1, "the wait for the source");

        await stop.CancelAsync();
        var result = await moving.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(BodyResult.Failed(BodyOutcome.ClientFailed, "cancelled"), result);
        Assert.Equal(0, bed.Loop.ArmedDeadlineCount);
    }
}
