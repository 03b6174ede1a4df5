using System.Runtime.InteropServices;

namespace ZcProxy.Native;

/// <summary>
/// Holds a SafeHandle's fd open for one burst of syscalls: while the lease is held the fd number cannot be closed and
/// reused by another file. The one place the DangerousAddRef/DangerousRelease pair lives. A socket's lease is never
/// held across an await: Socket.Dispose spins until every reference is released, so a reference held while waiting
/// would deadlock Kestrel's abort (a file's close waits for its references instead, so a file may stay leased for a
/// whole transfer).
/// </summary>
internal readonly struct FdLease : IDisposable
{
    private readonly SafeHandle? _handle;

    private FdLease(SafeHandle handle)
    {
        _handle = handle;
        Fd = (int)handle.DangerousGetHandle();
    }

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

    /// <summary>As <see cref="TryAcquire"/>, throwing <see cref="ObjectDisposedException"/> when the handle is closed.</summary>
    public static FdLease Acquire(SafeHandle handle)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        return new FdLease(handle);
    }

    public void Dispose() => _handle?.DangerousRelease();
}
