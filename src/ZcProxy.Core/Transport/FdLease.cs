using System.Runtime.InteropServices;

namespace ZcProxy.Core.Transport;

/// <summary>
/// Holds a SafeHandle's fd open for one burst of syscalls, never across an await: Socket.Dispose spins until
/// every reference is released, so a reference held while waiting would deadlock Kestrel's abort. While the
/// lease is held the fd number cannot be closed and reused by another file.
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

    public void Dispose() => _handle?.DangerousRelease();
}
