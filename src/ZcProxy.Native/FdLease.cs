using System.Runtime.InteropServices;

namespace ZcProxy.Native;

/// <summary>
/// Holds a SafeHandle's fd open for one burst of syscalls: while the lease is held the fd number cannot be closed and
/// reused by another file. The one place the DangerousAddRef/DangerousRelease pair lives. A socket's lease is never
/// held across an await: Socket.Dispose spins until every reference is released, so a reference held while waiting
/// would deadlock Kestrel's abort (a file's close waits for its references instead, so a file may stay leased for a
/// whole transfer). On the thread of an <see cref="FdHold"/> the hold stands for the lease: nothing is taken per call.
/// </summary>
internal readonly struct FdLease : IDisposable
{
    private readonly SafeHandle? _handle;

    private FdLease(SafeHandle handle)
    {
        _handle = handle;
        Fd = (int)handle.DangerousGetHandle();
    }

    private FdLease(int heldFd) => Fd = heldFd;

    public int Fd { get; }

    /// <summary>False when the handle is already closed (the connection or source is gone).</summary>
    public static bool TryAcquire(SafeHandle handle, out FdLease lease)
    {
        bool added = false;
        try { handle.DangerousAddRef(ref added); }
        catch (ObjectDisposedException) { }
        lease = added ? new FdLease(handle) : default;
        return added;
    }

    /// <summary>
    /// As <see cref="TryAcquire(SafeHandle, out FdLease)"/>, free on the thread that owns <paramref name="hold"/> while it
    /// is held (the hold keeps the fd open; disposing this lease then releases nothing).
    /// </summary>
    public static bool TryAcquire(SafeHandle handle, FdHold? hold, out FdLease lease)
    {
        if (hold is not null && hold.TryGetFd(out int fd))
        {
            lease = new FdLease(fd);
            return true;
        }
        return TryAcquire(handle, out lease);
    }

    /// <summary>As <see cref="TryAcquire(SafeHandle, out FdLease)"/>, throwing <see cref="ObjectDisposedException"/> when the handle is closed.</summary>
    public static FdLease Acquire(SafeHandle handle)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        return new FdLease(handle);
    }

    public void Dispose() => _handle?.DangerousRelease();
}

/// <summary>
/// One reference on a handle held for as long as one thread (an event loop's) uses its fd, so that thread's syscalls take
/// no lease each (<see cref="FdLease.TryAcquire(SafeHandle, FdHold?, out FdLease)"/>): a lease is two interlocked
/// operations per syscall, and a proxied request makes four syscalls on two held sockets.
/// Use-after-close safety is a lease's: while the reference is held, disposing the handle only marks it closed (its
/// close(2) runs at the last release), so the fd number cannot be reused under the owner thread. The reference is dropped
/// only on the owner thread (<see cref="Drop"/>), between two of its syscalls, so none of them outlives it; any other
/// thread still leases per call, and a closed handle refuses new leases as before. Once the owner thread has ended it
/// makes no syscalls: whoever drops then may do it from any thread.
/// Only for handles whose close waits for their references (<c>FileDescriptor</c>): a .NET Socket's Dispose instead
/// disconnects the socket and spins while a reference is held.
/// </summary>
internal sealed class FdHold
{
    private readonly SafeHandle _handle;
    private readonly Thread _owner;
    private readonly int _fd;
    private int _dropped;

    private FdHold(SafeHandle handle, Thread owner)
    {
        _handle = handle;
        _owner = owner;
        _fd = (int)handle.DangerousGetHandle();
    }

    /// <summary>The hold of <paramref name="handle"/> for <paramref name="owner"/>, or null when the handle is closed already.</summary>
    public static FdHold? TryTake(SafeHandle handle, Thread owner)
    {
        bool added = false;
        try { handle.DangerousAddRef(ref added); }
        catch (ObjectDisposedException) { }
        return added ? new FdHold(handle, owner) : null;
    }

    /// <summary>The fd, on the owner thread while the hold is held (only the owner thread drops it, so it stays so until the caller's next drop).</summary>
    public bool TryGetFd(out int fd)
    {
        fd = _fd;
        return Volatile.Read(ref _dropped) == 0 && Thread.CurrentThread == _owner;
    }

    /// <summary>Releases the reference, once: on the owner thread, or after it has ended.</summary>
    public void Drop()
    {
        if (Interlocked.Exchange(ref _dropped, 1) == 0) _handle.DangerousRelease();
    }
}
