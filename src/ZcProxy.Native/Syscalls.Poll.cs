using System.Runtime.InteropServices;

namespace ZcProxy.Native;

internal static unsafe partial class Syscalls
{
    public const short POLLIN = 0x1, POLLPRI = 0x2, POLLERR = 0x8, POLLHUP = 0x10;

    /// <summary>
    /// One non-blocking poll(2) of a socket: the returned revents (0 when nothing is ready). One syscall where
    /// Socket.Poll needs one per SelectMode. A closed handle reads as POLLERR.
    /// </summary>
    public static short PollNow(SafeHandle handle, short events)
    {
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            PollFd fd = new() { Fd = (int)handle.DangerousGetHandle(), Events = events };
            while (true)
            {
                int n = Libc.poll(&fd, 1, 0);
                if (n >= 0) return n == 0 ? (short)0 : fd.Revents;
                int errno = LastErrno();
                if (errno != EINTR) throw new ErrnoException("poll", errno);
            }
        }
        catch (ObjectDisposedException) { return POLLERR; }
        finally { if (added) handle.DangerousRelease(); }
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }
}
