using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using ZcProxy.Native;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Transport.Loops;

/// <summary>
/// One event loop: a dedicated thread running epoll_wait on its own epoll fd. Fds are registered once,
/// edge-triggered, and their waits are completed INLINE on this thread: the continuation (Kestrel's parser, the
/// app, the forwarder) runs here until its next pending wait, like an nginx or HAProxy worker, with no thread-pool
/// hop. Work from other threads (wake a wait, abort, fire ConnectionClosed) is posted to a queue and the loop is
/// woken through an eventfd; one eventfd write per batch of posts.
/// </summary>
internal sealed partial class EventLoop : IDisposable
{
    private const ulong WakeToken = 0;
    private static readonly uint RegisteredEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    private readonly ConcurrentDictionary<ulong, LoopSocket> _sockets = new();
    private readonly ConcurrentQueue<(Action<object?> Work, object? State)> _posted = new();
    private readonly ConcurrentQueue<FdHold> _drops = new(); // holds of fds unregistered off this thread: dropped here
    private readonly Queue<Action> _nextTurn = new(); // loop thread only: see YieldTurn
    private readonly FileDescriptor _epoll;
    private readonly FileDescriptor _wake;
    private readonly Thread _thread;
    private readonly ILogger? _log;
    private readonly TimeProvider _time;
    private int _wakePending;
    private long _nextToken;
    private volatile bool _stopping;
    private int _ended; // the thread's loop is over (set before its last DropHolds)

    /// <param name="time">The clock of <see cref="LoopDeadline"/>s (tests pass a fake one).</param>
    public EventLoop(int index, ILogger? log = null, TimeProvider? time = null)
    {
        Index = index;
        _log = log;
        _time = time ?? TimeProvider.System;
        _epoll = Syscalls.EpollCreate();
        _wake = Syscalls.EventFd();
        int err = Syscalls.EpollControl(_epoll, EPOLL_CTL_ADD, _wake.Fd, EPOLLIN, WakeToken);
        if (err != 0) throw new ErrnoException("epoll_ctl(eventfd)", err);
        _thread = new Thread(Run) { IsBackground = true, Name = $"zcproxy-loop-{index}" };
        _thread.Start();
    }

    public int Index { get; }

    /// <summary>When this loop's current turn started (read after each epoll_wait): <see cref="LoopClock"/> on this thread.</summary>
    internal long TurnStarted { get; private set; } = System.Diagnostics.Stopwatch.GetTimestamp();

    /// <summary>Fds registered right now (for tests and leak checks).</summary>
    public int RegistrationCount => _sockets.Count;

    public bool IsLoopThread => Thread.CurrentThread == _thread;

    /// <summary>True on any event loop's thread: code that may wait for the disk must not run there (Output/LoopFileIo).</summary>
    public static bool OnAnyLoopThread => t_current is not null;

    /// <summary>The loop whose thread this is, or null off the loops.</summary>
    public static EventLoop? Current => t_current;

    [ThreadStatic] private static EventLoop? t_current;

    /// <summary>
    /// <c>await EventLoop.YieldTurn()</c>: on a loop thread, continues only after the loop's next epoll_wait has dispatched
    /// the events that are ready by then, so one connection's long run of work (a body's sends, <see cref="LoopTurn"/>)
    /// does not make the loop's other connections wait until it is done (nginx posts such a write event to
    /// <c>ngx_posted_next_events</c>). Off the loops it continues at once.
    /// </summary>
    public static TurnAwaitable YieldTurn() => new(t_current);

    /// <summary>The loop thread's kernel thread id (its /proc/self/task entry), once it runs; tests read its I/O counters.</summary>
    public int NativeThreadId { get; private set; }

    /// <summary>
    /// Adds <paramref name="handle"/>'s fd to this loop for good (EPOLLIN|EPOLLOUT|EPOLLRDHUP, edge-triggered). The
    /// kernel reports the fd's current state at once, so nothing that is already readable is missed.
    /// </summary>
    /// <param name="holdFd">
    /// Hold the fd open for this loop's thread until <see cref="Unregister"/> (<see cref="LoopSocket.Hold"/>): only for a
    /// handle whose close waits for its references (<see cref="FileDescriptor"/>) and that is unregistered before it is closed.
    /// </param>
    public LoopSocket Register(SafeHandle handle, bool holdFd = false)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        var socket = new LoopSocket(this, handle, (ulong)Interlocked.Increment(ref _nextToken), holdFd ? FdHold.TryTake(handle, _thread) : null);
        _sockets[socket.Token] = socket;
        int err;
        if (!FdLease.TryAcquire(handle, out var lease)) err = (int)Errno.EBADF;
        else using (lease) err = Syscalls.EpollControl(_epoll, EPOLL_CTL_ADD, lease.Fd, RegisteredEvents, socket.Token);
        if (err != 0)
        {
            _sockets.TryRemove(socket.Token, out _);
            socket.Hold?.Drop(); // never used: nobody has the socket yet
            throw new ErrnoException("epoll_ctl(EPOLL_CTL_ADD)", err);
        }
        return socket;
    }

    /// <summary>
    /// Forgets the fd. <paramref name="fdStaysOpen"/>: the fd lives on (an upstream socket going back to its pool),
    /// so it is removed from epoll; an fd about to be closed leaves the epoll set by itself.
    /// </summary>
    public void Unregister(LoopSocket socket, bool fdStaysOpen)
    {
        if (!_sockets.TryRemove(socket.Token, out _)) return;
        if (fdStaysOpen && !_epoll.IsClosed && FdLease.TryAcquire(socket.Handle, out var lease))
            using (lease) Syscalls.EpollControl(_epoll, EPOLL_CTL_DEL, lease.Fd, 0, 0);
        socket.OnLoopStopped(new ObjectDisposedException(nameof(LoopSocket)));
        if (socket.Hold is { } hold) DropOnLoopThread(hold);
    }

    /// <summary>
    /// An unregistered fd's hold is dropped on this loop's thread, between two of its syscalls (<see cref="FdHold"/>): at
    /// once there, else at the loop's next turn (a close waits for it meanwhile: a <see cref="FileDescriptor"/> closes at the
    /// drop). Once the loop thread has ended, here.
    /// </summary>
    private void DropOnLoopThread(FdHold hold)
    {
        if (IsLoopThread)
        {
            hold.Drop();
            return;
        }
        _drops.Enqueue(hold);
        Wake();
        // The loop sets _ended before its last DropHolds: a hold queued after that drain sees _ended here (the enqueue and
        // the exchange are full fences). Dropped once the thread is over (a second Drop is nothing).
        if (Volatile.Read(ref _ended) != 0)
        {
            _thread.Join();
            hold.Drop();
        }
    }

    private void DropHolds()
    {
        while (_drops.TryDequeue(out var hold)) hold.Drop();
    }

    /// <summary>
    /// Whether read events of <paramref name="socket"/>'s fd wake this loop (EPOLL_CTL_MOD; hang-ups, errors and write
    /// events always do). Turned back on, the kernel reports at once what is already readable, so no data is missed.
    /// </summary>
    internal void SetReadInterest(LoopSocket socket, bool reads)
    {
        if (_epoll.IsClosed || !FdLease.TryAcquire(socket.Handle, out var lease)) return;
        // ENOENT: the fd left this loop meanwhile (unregistered, closed); nothing to change then.
        using (lease) Syscalls.EpollControl(_epoll, EPOLL_CTL_MOD, lease.Fd, reads ? RegisteredEvents : RegisteredEvents & ~EPOLLIN, socket.Token);
    }

    /// <summary>Runs <paramref name="work"/> on the loop thread soon (at the end of the current iteration when called from it).</summary>
    public void Post(Action<object?> work, object? state)
    {
        _posted.Enqueue((work, state));
        if (IsLoopThread) return; // the loop drains the queue before its next epoll_wait
        Wake();
    }

    /// <summary>Interrupts the loop's epoll_wait (one eventfd write per batch).</summary>
    private void Wake()
    {
        if (Interlocked.Exchange(ref _wakePending, 1) == 0 && !_wake.IsClosed)
        {
            try { Syscalls.EventFdSignal(_wake); } catch (ObjectDisposedException) { }
        }
    }

    private void Run()
    {
        Span<(uint Events, ulong Token)> ready = new (uint, ulong)[256];
        t_current = this;
        NativeThreadId = Syscalls.GetThreadId();
        try
        {
            while (!_stopping)
            {
                int n = Syscalls.EpollWait(_epoll, ready, _posted.IsEmpty && _nextTurn.Count == 0 ? DeadlineWaitMilliseconds() : 0);
                TurnStarted = System.Diagnostics.Stopwatch.GetTimestamp();
                for (int i = 0; i < n; i++)
                {
                    var (events, token) = ready[i];
                    if (token == WakeToken)
                    {
                        Syscalls.EventFdDrain(_wake);
                        Volatile.Write(ref _wakePending, 0); // before draining the queue: later posts signal again
                        continue;
                    }
                    if (_sockets.TryGetValue(token, out var socket)) Dispatch(socket, events);
                }
                RunPosted();
                DropHolds();
                RunYielded();
                SweepDeadlines();
            }
        }
        catch (Exception e)
        {
            if (_log is not null) LogStopped(_log, Index, e);
        }
        _stopping = true;
        var stopped = new ObjectDisposedException(nameof(EventLoop));
        foreach (var socket in _sockets.Values) socket.OnLoopStopped(stopped);
        RunYielded(); // they find their sockets failed (a yield while stopping continues at once)
        Interlocked.Exchange(ref _ended, 1);
        DropHolds(); // later ones are dropped by whoever unregisters (DropOnLoopThread)
    }

    /// <summary>
    /// The continuations that yielded before this call (during this turn's dispatch or the one before); those that yield
    /// again while running wait for the next turn, behind the events it brings.
    /// </summary>
    private void RunYielded()
    {
        for (int due = _nextTurn.Count; due > 0 && _nextTurn.TryDequeue(out var continuation); due--)
        {
            try { continuation(); }
            catch (Exception e) when (_log is not null) { LogContinuationFailed(_log, Index, e); }
        }
    }

    /// <summary>What <see cref="YieldTurn"/> returns: its continuation runs on this loop's next turn.</summary>
    internal readonly struct TurnAwaitable(EventLoop? loop) : ICriticalNotifyCompletion
    {
        public TurnAwaitable GetAwaiter() => this;
        public bool IsCompleted => loop is null || loop._stopping;
        public void GetResult() { }
        public void OnCompleted(Action continuation) => loop!._nextTurn.Enqueue(continuation);
        public void UnsafeOnCompleted(Action continuation) => loop!._nextTurn.Enqueue(continuation);
    }

    private void Dispatch(LoopSocket socket, uint events)
    {
        try { socket.OnEvents(events); }
        catch (Exception e) when (_log is not null) { LogContinuationFailed(_log, Index, e); }
    }

    private void RunPosted()
    {
        while (_posted.TryDequeue(out var item))
        {
            try { item.Work(item.State); }
            catch (Exception e) when (_log is not null) { LogContinuationFailed(_log, Index, e); }
        }
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Critical, Message = "event loop {Loop} stopped")]
    private static partial void LogStopped(ILogger logger, int loop, Exception exception);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Error, Message = "event loop {Loop}: a callback failed")]
    private static partial void LogContinuationFailed(ILogger logger, int loop, Exception exception);

    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        Syscalls.EventFdSignal(_wake);
        if (!IsLoopThread) _thread.Join();
        _epoll.Dispose();
        _wake.Dispose();
    }
}
