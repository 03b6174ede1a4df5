using System.Net;
using System.Net.Sockets;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Tests.Transport;

public sealed class EventLoopTests
{
    private static async Task<(Socket Listener, Socket A, Socket B)> ConnectedPairAsync()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var a = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await a.ConnectAsync(listener.LocalEndPoint!);
        var b = await listener.AcceptAsync();
        return (listener, a, b);
    }

    [Fact]
    public async Task ReadWait_CompletesInlineOnTheLoopThread_WhenDataArrivesAfterTheSnapshot()
    {
        using var loop = new EventLoop(0);
        var (listener, a, b) = await ConnectedPairAsync();
        using (listener) using (a) using (b)
        {
            var socket = loop.Register(a.SafeHandle);
            await Poll.UntilAsync(() => socket.WriteSequence > 0, "the registration reports the socket writable");
            int seen = socket.ReadSequence; // nothing readable yet: a wait from here needs a new edge
            var wait = socket.WaitReadableAsync(seen);
            Assert.False(wait.IsCompleted);
            var continuedOn = ThreadAfter(wait); // suspended now: its continuation is registered before the data comes
            await b.SendAsync(new byte[] { 1 }, SocketFlags.None);
            Assert.Equal("zcproxy-loop-0", await continuedOn.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.NotEqual(seen, socket.ReadSequence);
            loop.Unregister(socket, fdStaysOpen: true);
            Assert.Equal(0, loop.RegistrationCount);
        }
    }

    private static async Task<string?> ThreadAfter(ValueTask<bool> wait)
    {
        // xUnit runs tests under its own SynchronizationContext, which an await would post the continuation to;
        // Kestrel's code has none, so remove it here to observe where the loop runs the continuation.
        SynchronizationContext.SetSynchronizationContext(null);
        Assert.True(await wait);
        return Thread.CurrentThread.Name;
    }

    [Fact]
    public async Task Wait_ReturnsAtOnce_WhenAnEdgeCameBeforeItWasArmed()
    {
        using var loop = new EventLoop(0);
        var (listener, a, b) = await ConnectedPairAsync();
        using (listener) using (a) using (b)
        {
            var socket = loop.Register(a.SafeHandle);
            int seen = socket.ReadSequence;
            await b.SendAsync(new byte[] { 1 }, SocketFlags.None);
            await Poll.UntilAsync(() => socket.ReadSequence != seen, "the loop saw the edge");
            var wait = socket.WaitReadableAsync(seen);
            Assert.True(wait.IsCompletedSuccessfully);
            Assert.True(await wait);
            loop.Unregister(socket, fdStaysOpen: true);
        }
    }

    [Fact]
    public async Task Wait_IsWokenByCancellationAndFailure_FromAnyThread()
    {
        using var loop = new EventLoop(0);
        var (listener, a, b) = await ConnectedPairAsync();
        using (listener) using (a) using (b)
        {
            var socket = loop.Register(a.SafeHandle);
            using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(50)))
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => socket.WaitReadableAsync(socket.ReadSequence, cts.Token).AsTask());
            var pending = socket.WaitReadableAsync(socket.ReadSequence, CancellationToken.None).AsTask();
            Assert.False(pending.IsCompleted);
            socket.Fail(new IOException("connection aborted"));
            await Assert.ThrowsAsync<IOException>(() => pending.WaitAsync(TimeSpan.FromSeconds(10)));
            await Assert.ThrowsAsync<IOException>(() => socket.WaitReadableAsync(socket.ReadSequence, CancellationToken.None).AsTask());
            loop.Unregister(socket, fdStaysOpen: true);
        }
    }

    [Fact]
    public async Task PeerReset_ReportsTrouble_WhileNobodyWaits()
    {
        using var loop = new EventLoop(0);
        var (listener, a, b) = await ConnectedPairAsync();
        using (listener) using (a)
        {
            var socket = loop.Register(a.SafeHandle);
            var reported = new TroubleRecorder();
            socket.Trouble = reported;
            b.LingerState = new LingerOption(true, 0);
            b.Close();
            await Poll.UntilAsync(() => reported.Bits != 0, "the loop reports the reset");
            Assert.NotEqual(0u, socket.TroubleSeen & (ZcProxy.Native.LinuxConstants.EPOLLERR | ZcProxy.Native.LinuxConstants.EPOLLHUP));
            loop.Unregister(socket, fdStaysOpen: true);
        }
    }
    private sealed class TroubleRecorder : ILoopSocketTroubleHandler
    {
        private int _bits;
        public uint Bits => (uint)Volatile.Read(ref _bits);
        public void OnTrouble(uint bits) => Interlocked.Or(ref _bits, (int)bits);
    }

    [Fact]
    public async Task PausedReads_DoNotWakeTheLoop_AndResumingReportsWhatCameMeanwhile()
    {
        using var loop = new EventLoop(0);
        var (listener, a, b) = await ConnectedPairAsync();
        using (listener) using (a) using (b)
        {
            var socket = loop.Register(a.SafeHandle);
            await Poll.UntilAsync(() => socket.WriteSequence > 0, "the registration reports the socket writable");
            await OnLoopAsync(loop, socket.PauseReads);
            int seen = socket.ReadSequence;
            await b.SendAsync(new byte[] { 1 }, SocketFlags.None);
            await Poll.UntilAsync(() => a.Available > 0, "the byte reached the socket");
            // Two loop iterations after the byte arrived: an event for it would have been dispatched by now.
            await OnLoopAsync(loop, () => { });
            await OnLoopAsync(loop, () => { });
            Assert.Equal(seen, socket.ReadSequence);

            // Resumed, the kernel reports the byte that came meanwhile: a read wait from the old snapshot completes.
            await OnLoopAsync(loop, socket.ResumeReads);
            Assert.True(await socket.WaitReadableAsync(seen).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.NotEqual(seen, socket.ReadSequence);
            loop.Unregister(socket, fdStaysOpen: true);
        }
    }

    private static Task OnLoopAsync(EventLoop loop, Action action)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        loop.Post(_ =>
        {
            action();
            done.SetResult();
        }, null);
        return done.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
