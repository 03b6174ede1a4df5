using System.Runtime.InteropServices;
using Tmds.Linux;

namespace ZcProxy.Native;

internal static unsafe partial class Syscalls
{
    public static short POLLIN => LibC.POLLIN;
    public static short POLLPRI => LibC.POLLPRI;
    public static short POLLERR => LibC.POLLERR;

    /// <summary>
    /// One non-blocking poll(2) of a socket: the returned revents (0 when nothing is ready). One syscall where
    /// Socket.Poll needs one per SelectMode. A closed handle reads as POLLERR.
    /// </summary>
    public static short PollNow(SafeHandle handle, int events)
    {
        if (!FdLease.TryAcquire(handle, out var lease)) return POLLERR;
        using (lease)
        {
            pollfd fd = new() { fd = lease.Fd, events = (short)events };
            while (true)
            {
                int n = LibC.poll(&fd, 1u, 0);
                if (n >= 0) return n == 0 ? (short)0 : fd.revents;
                int errno = LastErrno();
                if (errno != EINTR) throw new ErrnoException("poll", errno);
            }
        }
    }
}
