using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using ZcProxy.Native;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Transport;

/// <summary>
/// Waits for socket readiness without blocking pool threads: one dedicated thread runs epoll_wait and
/// completes the waiters' tasks (continuations run on the pool, never on this thread). Every wait is
/// one-shot (EPOLLONESHOT), so an fd is re-armed per wait and never reports twice for one arm.
/// An eventfd wakes the thread to stop. Sockets stay registered with .NET's own epoll too; the kernel
/// allows an fd in several epoll sets.
/// </summary>
internal sealed partial class ReadinessReactor : IDisposable
{
    private const ulong WakeToken = 0;
    private readonly ConcurrentDictionary<ulong, ReactorRegistration> _registrations = new();
    private readonly ILogger<ReadinessReactor>? _log;
    private readonly object _startLock = new();
    private FileDescriptor? _epoll;
    private FileDescriptor? _wake;
    private Thread? _thread;
    private long _nextToken;
    private volatile bool _stopping;

    public ReadinessReactor(ILogger<ReadinessReactor>? log = null) => _log = log;

    /// <summary>Registrations currently alive (for tests and leak checks).</summary>
    public int RegistrationCount => _registrations.Count;

    /// <summary>Creates a registration for <paramref name="handle"/>'s fd; the fd is added to epoll on its first wait.
    /// Every epoll_ctl on it runs while the handle is held open, so a closed and reused fd number is never touched.</summary>
    public ReactorRegistration Register(System.Runtime.InteropServices.SafeHandle handle)
    {
        EnsureStarted();
        var registration = new ReactorRegistration(this, handle, (ulong)Interlocked.Increment(ref _nextToken));
        _registrations[registration.Token] = registration;
        return registration;
    }

    /// <summary>Arms a one-shot wait; returns errno (EBADF when the handle is already closed).</summary>
    internal int Arm(ReactorRegistration registration, uint events, bool added)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        if (!FdLease.TryAcquire(registration.Handle, out var lease)) return (int)Errno.EBADF;
        using (lease)
            return Syscalls.EpollControl(_epoll!, added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, lease.Fd,
                events | EPOLLONESHOT | EPOLLERR | EPOLLHUP, registration.Token);
    }

    internal void Remove(ReactorRegistration registration, bool added)
    {
        _registrations.TryRemove(registration.Token, out _);
        // A closed fd has already left the epoll set (the kernel removes it with its last reference).
        if (!added || _epoll is not { IsClosed: false } epoll || !FdLease.TryAcquire(registration.Handle, out var lease)) return;
        using (lease) Syscalls.EpollControl(epoll, EPOLL_CTL_DEL, lease.Fd, 0, 0);
    }

    private void EnsureStarted()
    {
        if (_thread is not null) return;
        lock (_startLock)
        {
            ObjectDisposedException.ThrowIf(_stopping, this);
            if (_thread is not null) return;
            _epoll = Syscalls.EpollCreate();
            _wake = Syscalls.EventFd();
            int err = Syscalls.EpollControl(_epoll, EPOLL_CTL_ADD, _wake.Fd, EPOLLIN, WakeToken);
            if (err != 0) throw new ErrnoException("epoll_ctl(eventfd)", err);
            var thread = new Thread(Run) { IsBackground = true, Name = "zcproxy-reactor" };
            thread.Start();
            _thread = thread;
        }
    }

    private void Run()
    {
        var ready = new (uint Events, ulong Token)[256];
        try
        {
            while (!_stopping)
            {
                int n = Syscalls.EpollWait(_epoll!, ready, -1);
                for (int i = 0; i < n; i++)
                {
                    if (ready[i].Token == WakeToken) { Syscalls.EventFdDrain(_wake!); continue; }
                    if (_registrations.TryGetValue(ready[i].Token, out var registration)) registration.Complete(ready[i].Events);
                }
            }
        }
        catch (Exception ex)
        {
            if (_log is not null) LogStopped(_log, ex);
            _stopping = true;
        }
        var stopped = new ObjectDisposedException(nameof(ReadinessReactor));
        foreach (var registration in _registrations.Values) registration.Fail(stopped);
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Critical, Message = "readiness reactor stopped")]
    private static partial void LogStopped(ILogger logger, Exception exception);

    public void Dispose()
    {
        Thread? thread;
        lock (_startLock)
        {
            if (_stopping && _thread is null) return;
            _stopping = true;
            thread = _thread;
        }
        if (thread is null) return;
        Syscalls.EventFdSignal(_wake!);
        thread.Join();
        _epoll!.Dispose();
        _wake!.Dispose();
    }
}
