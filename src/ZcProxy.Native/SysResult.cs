namespace ZcProxy.Native;

/// <summary>
/// The outcome of a data-moving call on the hot path: a byte count, or an errno (no exception).
/// EAGAIN is the normal "wait for readiness" outcome of non-blocking fds.
/// </summary>
internal readonly record struct SysResult(long Bytes, int Errno)
{
    public bool Ok => Errno == 0;
    public bool WouldBlock => Errno == (int)Native.Errno.EAGAIN;

    public ErrnoException ToException(string call) => new(call, Errno);
}
