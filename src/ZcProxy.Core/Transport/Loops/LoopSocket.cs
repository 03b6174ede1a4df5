using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ZcProxy.Native;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Transport.Loops;

/// <summary>
/// An fd registered once, edge-triggered, with one <see cref="EventLoop"/>. Readiness is tracked in user space as
/// one sequence number per direction, bumped by the loop on each event: a caller snapshots it before its syscall
/// and, on EAGAIN, waits for it to move past the snapshot, so no epoll_ctl per wait and no lost edge.
/// Hang-up and error bits are sticky. One waiter per direction at a time (the connection's reader, its writer).
/// </summary>
internal sealed class LoopSocket
{
    private static readonly uint ReadEvents = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
    private static readonly uint WriteEvents = EPOLLOUT | EPOLLHUP | EPOLLERR;
    private static readonly uint TroubleEvents = EPOLLRDHUP | EPOLLHUP | EPOLLERR;
    private readonly ReadinessWaiter _reader = new();
    private readonly ReadinessWaiter _writer = new();
    private int _readSequence, _writeSequence;
    private int _trouble;
    private bool _readsPaused; // loop thread only
    private Exception? _failure;

    internal LoopSocket(EventLoop loop, SafeHandle handle, ulong token, FdHold? hold)
    {
        Loop = loop;
        Handle = handle;
        Token = token;
        Hold = hold;
    }

    public EventLoop Loop { get; }
    public SafeHandle Handle { get; }

    /// <summary>
    /// The fd held open for the loop thread while registered (asked for at <see cref="EventLoop.Register"/>): its syscalls
    /// there lease nothing per call (<see cref="FdLease.TryAcquire(SafeHandle, FdHold?, out FdLease)"/>). Null when not asked for.
    /// </summary>
    public FdHold? Hold { get; }
    internal ulong Token { get; }

    /// <summary>Told on the loop thread the first time RDHUP, HUP or ERR is reported (with the new bits). An owner, not
    /// a delegate: a closure per socket was 64 B more per idle connection.</summary>
    public ILoopSocketTroubleHandler? Trouble { get; set; }

    /// <summary>Snapshot before a read-side syscall; pass it to <see cref="WaitReadableAsync(int)"/> after EAGAIN.</summary>
    public int ReadSequence => Volatile.Read(ref _readSequence);
    public int WriteSequence => Volatile.Read(ref _writeSequence);
    /// <summary>Sticky EPOLLRDHUP/EPOLLHUP/EPOLLERR bits seen so far.</summary>
    public uint TroubleSeen => (uint)Volatile.Read(ref _trouble);
    public Exception? Failure => Volatile.Read(ref _failure);

    /// <summary>Completes when a read event arrives after <paramref name="seen"/>, or when woken (cancel, failure): re-check, then retry.</summary>
    public ValueTask<bool> WaitReadableAsync(int seen) => _reader.WaitAsync(ref _readSequence, seen);

    /// <summary>
    /// Runs <paramref name="continuation"/> when the pending <see cref="WaitReadableAsync(int)"/> (not completed yet) is
    /// over: what awaiting it does, with a static delegate and a state instead of an Action bound to the waiter.
    /// </summary>
    public void OnReadWaitOver(Action<object?> continuation, object state) => _reader.OnWaitOver(continuation, state);
    public ValueTask<bool> WaitWritableAsync(int seen) => _writer.WaitAsync(ref _writeSequence, seen);

    /// <summary>As <see cref="WaitReadableAsync(int)"/>, throwing on cancellation or failure.</summary>
    [AsyncMethodBuilder(typeof(FramePoolBuilder))]
    public async ValueTask WaitReadableAsync(int seen, CancellationToken cancellationToken)
    {
        ThrowIfFailedOrCanceled(cancellationToken);
        using (WakeReaderOn(cancellationToken))
            await _reader.WaitAsync(ref _readSequence, seen);
        ThrowIfFailedOrCanceled(cancellationToken);
    }

    [AsyncMethodBuilder(typeof(FramePoolBuilder))]
    public async ValueTask WaitWritableAsync(int seen, CancellationToken cancellationToken)
    {
        ThrowIfFailedOrCanceled(cancellationToken);
        using (WakeWriterOn(cancellationToken))
            await _writer.WaitAsync(ref _writeSequence, seen);
        ThrowIfFailedOrCanceled(cancellationToken);
    }

    /// <summary>Wakes a pending read wait when <paramref name="cancellationToken"/> is cancelled (dispose after the wait); nothing for an uncancellable token.</summary>
    public CancellationTokenRegistration WakeReaderOn(CancellationToken cancellationToken)
        => cancellationToken.CanBeCanceled ? cancellationToken.UnsafeRegister(static s => ((LoopSocket)s!).WakeReader(), this) : default;

    /// <summary>As <see cref="WakeReaderOn"/>, for the write wait.</summary>
    public CancellationTokenRegistration WakeWriterOn(CancellationToken cancellationToken)
        => cancellationToken.CanBeCanceled ? cancellationToken.UnsafeRegister(static s => ((LoopSocket)s!).WakeWriter(), this) : default;

    /// <summary>What a cancellable wait checks before and after waiting: the socket's failure, then the token.</summary>
    public void ThrowIfFailedOrCanceled(CancellationToken cancellationToken)
    {
        if (Failure is { } failure) throw failure is OperationCanceledException oce ? new OperationCanceledException(oce.Message, oce) : new IOException(failure.Message, failure);
        cancellationToken.ThrowIfCancellationRequested();
    }

    /// <summary>Wakes a pending read wait from any thread (posted to the loop, which runs the continuation).</summary>
    public void WakeReader() => Loop.Post(static s => ((LoopSocket)s!)._reader.TryComplete(false), this);
    public void WakeWriter() => Loop.Post(static s => ((LoopSocket)s!)._writer.TryComplete(false), this);

    /// <summary>
    /// On the loop thread: data arriving on this fd no longer wakes the loop, while its reader is known not to want it
    /// (a body move waiting for the other socket: each segment the upstream sends meanwhile was a wake-up for nothing,
    /// ~13 per proxied 16 MiB body). The read sequence does not move meanwhile; <see cref="ResumeReads"/> before waiting to read.
    /// </summary>
    internal void PauseReads()
    {
        if (_readsPaused) return;
        _readsPaused = true;
        Loop.SetReadInterest(this, reads: false);
    }

    /// <summary>Read events wake the loop again; what is readable already is reported at once (a read wait armed after this sees it).</summary>
    internal void ResumeReads()
    {
        if (!_readsPaused) return;
        _readsPaused = false;
        Loop.SetReadInterest(this, reads: true);
    }

    /// <summary>Every later wait of this fd fails with <paramref name="reason"/> (its connection is gone); pending ones wake.</summary>
    public void Fail(Exception reason)
    {
        Interlocked.CompareExchange(ref _failure, reason, null);
        Loop.Post(static s =>
        {
            var socket = (LoopSocket)s!;
            socket._reader.TryComplete(false);
            socket._writer.TryComplete(false);
        }, this);
    }

    /// <summary>
    /// On the loop thread: one epoll event for this fd. Every bit of state is updated before any waiter is completed:
    /// a completion runs its continuation inline, which may check the state and wait again right away.
    /// </summary>
    internal void OnEvents(uint events)
    {
        bool readable = (events & ReadEvents) != 0, writable = (events & WriteEvents) != 0;
        if (readable) Interlocked.Increment(ref _readSequence);
        if (writable) Interlocked.Increment(ref _writeSequence);
        uint trouble = events & TroubleEvents, before = 0;
        if (trouble != 0) before = (uint)Interlocked.Or(ref _trouble, (int)trouble);
        if (readable) _reader.TryComplete(true);
        if (writable) _writer.TryComplete(true);
        if ((before | trouble) != before) Trouble?.OnTrouble(trouble & ~before);
    }

    /// <summary>The loop stopped: every wait fails.</summary>
    internal void OnLoopStopped(Exception reason)
    {
        Interlocked.CompareExchange(ref _failure, reason, null);
        _reader.TryComplete(false);
        _writer.TryComplete(false);
    }
}
