namespace ZcProxy.Core.Transport;

/// <summary>
/// One fd in the reactor. At most one wait at a time (each fd has one user: the connection's writer, or a
/// splice's upstream side). A wait ends with the ready events, by cancellation, or by <see cref="Fail"/>
/// (the connection died): nobody waits forever on a dead fd.
/// </summary>
internal sealed class ReactorRegistration : IDisposable
{
    private readonly ReadinessReactor _reactor;
    private readonly object _lock = new();
    private TaskCompletionSource<uint>? _waiter;
    private Exception? _failure;
    private bool _added;
    private bool _disposed;

    internal ReactorRegistration(ReadinessReactor reactor, System.Runtime.InteropServices.SafeHandle handle, ulong token)
    {
        _reactor = reactor;
        Handle = handle;
        Token = token;
    }

    internal System.Runtime.InteropServices.SafeHandle Handle { get; }
    internal ulong Token { get; }

    /// <summary>Waits until the fd reports one of <paramref name="events"/> (or EPOLLERR/EPOLLHUP, always reported).
    /// Spurious wake-ups are possible: callers retry their operation and wait again on EAGAIN.</summary>
    public async Task<uint> WaitAsync(uint events, CancellationToken cancellationToken)
    {
        var waiter = new TaskCompletionSource<uint>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (_failure is not null) throw Rethrowable(_failure);
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_waiter is not null) throw new InvalidOperationException("only one readiness wait per fd at a time");
            _waiter = waiter;
            int err = _reactor.Arm(this, events, _added);
            if (err != 0)
            {
                _waiter = null;
                throw new Native.ErrnoException("epoll_ctl", err);
            }
            _added = true;
        }
        using (cancellationToken.UnsafeRegister(static (state, token) => ((TaskCompletionSource<uint>)state!).TrySetCanceled(token), waiter))
        {
            try { return await waiter.Task.ConfigureAwait(false); }
            finally { lock (_lock) if (ReferenceEquals(_waiter, waiter)) _waiter = null; }
        }
    }

    internal void Complete(uint events)
    {
        TaskCompletionSource<uint>? waiter;
        lock (_lock) waiter = _waiter;
        waiter?.TrySetResult(events);
    }

    /// <summary>Ends the current wait and every later one with <paramref name="reason"/> (the fd's connection is gone).</summary>
    public void Fail(Exception reason)
    {
        TaskCompletionSource<uint>? waiter;
        lock (_lock)
        {
            _failure ??= reason;
            waiter = _waiter;
        }
        waiter?.TrySetException(reason);
    }

    /// <summary>Removes the fd from epoll (before its owner closes it) and fails a pending wait.</summary>
    public void Dispose()
    {
        TaskCompletionSource<uint>? waiter;
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            waiter = _waiter;
            _reactor.Remove(this, _added);
        }
        waiter?.TrySetException(new ObjectDisposedException(nameof(ReactorRegistration)));
    }

    private static Exception Rethrowable(Exception e) => e is OperationCanceledException oce ? new OperationCanceledException(oce.Message, oce) : new IOException(e.Message, e);
}
