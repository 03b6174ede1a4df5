using System.Runtime.CompilerServices;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Output;

/// <summary>How a <see cref="SpliceWait"/> ended: ready (or woken: the caller retries its syscall), or why not.</summary>
internal enum SpliceWaitEnd { Ready, TimedOut, Cancelled, Failed }

/// <summary>
/// The readiness waits of one splice move, each bounded by an idle timeout that the event loop itself keeps (a
/// <see cref="LoopDeadline"/>, nginx's event timers): arming and disarming it per wait is O(1) and allocates nothing,
/// where a timed CancellationTokenSource per EAGAIN made a linked source and a timer each time. A wait runs on the
/// sockets' loop (it moves there first when it is not), so the deadline's expiry, the wake-ups that cancellation and
/// failures post, and the wait itself never race: a wake-up runs only while the wait is armed.
/// </summary>
internal sealed class SpliceWait
{
    private readonly LoopDeadline _deadline;
    private LoopSocket? _waiting;
    private bool _forWrite, _expired;

    public SpliceWait() => _deadline = new LoopDeadline(static s => ((SpliceWait)s!).Expire(), this);

    /// <summary>
    /// Until <paramref name="socket"/> is readable (or writable, <paramref name="forWrite"/>) after <paramref name="seen"/>,
    /// its sequence taken before the syscall that hit EAGAIN; at most <paramref name="idle"/> (Infinite: unbounded).
    /// The caller wakes it on cancellation (<see cref="SpliceEnds"/> registers once per move). <paramref name="idleReader"/>: a
    /// socket whose data nobody reads during this wait (a write wait's source): its reads stop waking the loop until a read
    /// wait of it (<see cref="LoopSocket.PauseReads"/>); the caller resumes them when the move ends.
    /// </summary>
    [AsyncMethodBuilder(typeof(FramePoolBuilder<>))]
    public async ValueTask<SpliceWaitEnd> WaitAsync(LoopSocket socket, bool forWrite, int seen, TimeSpan idle, CancellationToken cancellationToken,
        LoopSocket? idleReader = null)
    {
        if (!socket.Loop.IsLoopThread) await socket.Loop.SwitchTo();
        if (forWrite) idleReader?.PauseReads();
        else socket.ResumeReads(); // before arming: data that came while paused is reported by the re-enabling itself
        if (socket.Failure is not null) return SpliceWaitEnd.Failed;
        if (cancellationToken.IsCancellationRequested) return SpliceWaitEnd.Cancelled;
        bool bounded = idle != Timeout.InfiniteTimeSpan;
        _expired = false;
        _forWrite = forWrite;
        _waiting = socket;
        if (bounded) socket.Loop.Arm(_deadline, idle);
        try { _ = forWrite ? await socket.WaitWritableAsync(seen) : await socket.WaitReadableAsync(seen); }
        finally
        {
            _waiting = null;
            if (bounded) _deadline.Disarm();
        }
        if (socket.Failure is not null) return SpliceWaitEnd.Failed;
        if (cancellationToken.IsCancellationRequested) return SpliceWaitEnd.Cancelled;
        return _expired ? SpliceWaitEnd.TimedOut : SpliceWaitEnd.Ready;
    }

    /// <summary>On the loop thread: the idle time passed while waiting; the wait wakes and reports it.</summary>
    private void Expire()
    {
        if (_waiting is not { } socket) return;
        _expired = true;
        if (_forWrite) socket.WakeWriter(); else socket.WakeReader();
    }
}
